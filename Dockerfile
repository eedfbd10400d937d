# syntax=docker/dockerfile:1
#
# Serving image of the Fashion Product Service: TorchServe with the ONNX Runtime
# handlers, and the FastAPI facade in front of it. docs/deployment.md has the details.
#
#   docker build -t fashion-product-service:cpu .
#   docker build --build-arg VARIANT=gpu -t fashion-product-service:gpu .
#   docker run --rm -p 127.0.0.1:8000:8000 fashion-product-service:cpu
#
# Build arguments:
#   VARIANT  cpu (default): Debian with onnxruntime.
#            gpu: CUDA 13 + cuDNN 9 runtime with onnxruntime-gpu. Run it with --gpus.
#   MODELS   sample (default): a build stage trains small demo models on the bundled
#            sample and packs the archives. Only the archives reach the image.
#            context: copy model_store/fashion_classifier.mar and price_regressor.mar
#            from the build context (archives built with the training and export CLIs).
#
# The serving image holds no training code or data: the archives, the launcher
# (model_store/), the facade (frontend_api/) and deploy/entrypoint.py.

ARG VARIANT=cpu
ARG MODELS=sample

FROM ghcr.io/astral-sh/uv:0.13.8 AS uv

# ---- Operating system per variant ---------------------------------------------------------
FROM debian:bookworm-slim AS os-cpu
FROM nvidia/cuda:13.0.1-cudnn-runtime-ubuntu24.04 AS os-gpu

# ---- Runtime: Java for TorchServe, Python 3.11 and the serving packages --------------------
# os-${VARIANT} names one of the stages above, which pin their image tags. hadolint
# cannot resolve a stage name built from an argument.
# hadolint ignore=DL3006
FROM os-${VARIANT} AS runtime
ARG VARIANT
ARG PYTHON_VERSION=3.11
# The price model's ONNX StringNormalizer needs a UTF-8 locale that exists on the
# machine. glibc has C.UTF-8 built in on both base images.
ENV LANG=C.UTF-8 \
    LC_ALL=C.UTF-8 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    UV_PYTHON_INSTALL_DIR=/opt/python \
    UV_PYTHON_PREFERENCE=only-managed \
    UV_NO_CACHE=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH
SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# Debian and Ubuntu publish security fixes under new package versions and drop the
# old ones, so pinned versions would break later builds. The base image tags are pinned.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates openjdk-17-jre-headless \
    && rm -rf /var/lib/apt/lists/*

# uv installs the same CPython 3.11 on both bases (Ubuntu 24.04 ships only 3.12).
# TorchServe's worker imports torch (ts/protocol/otf_message_handler.py in 0.12.0)
# although the handlers run ONNX Runtime, so the small CPU build of torch is enough
# in both variants.
COPY --from=uv /uv /usr/local/bin/uv
COPY deploy/requirements-serve.txt deploy/requirements-${VARIANT}.txt /tmp/requirements/
RUN uv python install "${PYTHON_VERSION}" \
    && uv venv --python "${PYTHON_VERSION}" /opt/venv \
    && uv pip install --index-url https://download.pytorch.org/whl/cpu --extra-index-url https://pypi.org/simple torch==2.14.1 \
    && uv pip install -r "/tmp/requirements/requirements-${VARIANT}.txt" \
    && rm -rf /tmp/requirements

# ---- Models, variant 1: demo models trained on the bundled sample ----------------------------
FROM python:3.11-slim-bookworm AS models-sample
ARG VARIANT
ENV LANG=C.UTF-8 \
    LC_ALL=C.UTF-8 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /build
COPY pyproject.toml ./
# torch and torchvision come from PyTorch's CPU index. The other dependencies are
# read from pyproject.toml, so this stage trains with the project's pinned versions.
RUN pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cpu --extra-index-url https://pypi.org/simple \
        torch==2.14.1 torchvision==0.29.1 \
    && python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install --no-cache-dir -r /tmp/requirements.txt
COPY training/ training/
COPY export/ export/
COPY handlers/ handlers/
COPY model_store/ model_store/
COPY frontend_api/ frontend_api/
COPY deploy/entrypoint.py deploy/entrypoint.py
RUN python deploy/entrypoint.py build-demo-models --out /archives --profile "${VARIANT}" --work-dir /tmp/demo \
    && rm -rf /tmp/demo

# ---- Models, variant 2: archives from the build context --------------------------------------
FROM runtime AS models-context
COPY model_store/ /tmp/context-model-store/
RUN mkdir /archives \
    && if ! cp /tmp/context-model-store/fashion_classifier.mar /tmp/context-model-store/price_regressor.mar /archives/; then \
        echo "MODELS=context needs model_store/fashion_classifier.mar and model_store/price_regressor.mar in the build context; build them first (docs/deployment.md) or use MODELS=sample." >&2; \
        exit 1; \
    fi \
    && rm -rf /tmp/context-model-store

# hadolint ignore=DL3006
FROM models-${MODELS} AS models

# ---- Serving image ----------------------------------------------------------------------------
FROM runtime AS serve
# A fixed numeric user, so Kubernetes' runAsNonRoot can verify it without a name lookup.
RUN groupadd --system --gid 10001 fps \
    && useradd --system --uid 10001 --gid fps --home-dir /var/lib/fps --create-home --shell /usr/sbin/nologin fps
WORKDIR /app
COPY frontend_api/ frontend_api/
COPY model_store/*.py model_store/
COPY model_store/config/ model_store/config/
COPY model_store/worker_site/ model_store/worker_site/
COPY deploy/entrypoint.py deploy/entrypoint.py
COPY --from=models /archives/ model_store/

# FPS_HOST opens the facade to the container network, while TorchServe stays on
# 127.0.0.1 in the default `all` command. FPS_WORK_DIR holds TorchServe's config,
# logs and keys.
ENV PYTHONPATH=/app \
    FPS_HOST=0.0.0.0 \
    FPS_PORT=8000 \
    FPS_MODEL_STORE=/app/model_store \
    FPS_WORK_DIR=/var/lib/fps/work \
    FPS_TS_JVM_HEAP=512m
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=180s --retries=3 \
    CMD ["python", "/app/deploy/entrypoint.py", "healthcheck"]
ENTRYPOINT ["python", "/app/deploy/entrypoint.py"]
CMD ["all"]
