"""Export of the ONNX models to a Triton Inference Server model repository.

TorchServe is in limited maintenance, so the project also ships a migration path to
Triton. Each exported model directory (model.onnx + manifest.json) becomes

    <out_dir>/<model_name>/config.pbtxt
    <out_dir>/<model_name>/1/model.onnx
    <out_dir>/<model_name>/manifest.json
    <out_dir>/<model_name>/labels.txt        (classifier only)

served by Triton's ONNX Runtime backend. The batching settings come from the same
model-config profile (model_store/config/<model_name>.yaml, cpu or gpu) that the
TorchServe archive is built with, so both servers batch the same way:

    TorchServe model-config.yaml     Triton config.pbtxt
    batchSize                        max_batch_size
    maxBatchDelay (ms)               dynamic_batching.max_queue_delay_microseconds
    minWorkers                       instance_group.count
    handler.device (cpu | cuda)      instance_group.kind (KIND_CPU | KIND_GPU)
    handler.intra_op_threads         parameters.intra_op_thread_count (0 leaves ORT's default)
    job_queue_size (config.properties, optional)
                                     dynamic_batching.default_queue_policy.max_queue_size

Triton keeps a fixed number of instances, so maxWorkers has no equivalent, and the
handler's pre- and post-processing (image decoding, top-k, price validation) stays
with the client: Triton serves the bare ONNX graphs. Input and output names, types and
shapes are read from the ONNX graph, because Triton checks the config against the
model when it loads it.

Run `python -m export.triton --help` for the command line.
"""

import argparse
import logging
import re
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from export.manifest import (
    MANIFEST_NAME,
    TASK_IMAGE_CLASSIFICATION,
    describe_onnx_tensors,
    file_sha256,
    read_manifest,
)
from model_store.archive import KINDS, PROFILES, model_config

logger = logging.getLogger(__name__)

CONFIG_NAME = "config.pbtxt"
LABELS_NAME = "labels.txt"
# Triton loads the highest numbered version folder by default, and the export writes only this one.
VERSION_DIR = "1"
TRITON_MODEL_FILE = "model.onnx"

# NumPy dtype names, as the manifest writes them, to Triton data types.
TRITON_DATA_TYPES = {
    "bool": "TYPE_BOOL",
    "uint8": "TYPE_UINT8",
    "uint16": "TYPE_UINT16",
    "uint32": "TYPE_UINT32",
    "uint64": "TYPE_UINT64",
    "int8": "TYPE_INT8",
    "int16": "TYPE_INT16",
    "int32": "TYPE_INT32",
    "int64": "TYPE_INT64",
    "float16": "TYPE_FP16",
    "float32": "TYPE_FP32",
    "float64": "TYPE_FP64",
    "string": "TYPE_STRING",
}

INSTANCE_KINDS = {"cpu": "KIND_CPU", "cuda": "KIND_GPU"}

# Triton model names are folder names, and config.pbtxt quotes them. This pattern
# keeps both safe without escaping.
SAFE_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclass(frozen=True)
class BatchingSettings:
    """The TorchServe model-config values that have a Triton equivalent."""

    max_batch_size: int
    max_batch_delay_ms: int
    instance_count: int
    device: str
    intra_op_threads: int | None = None

    @classmethod
    def from_model_config(cls, config: Mapping, source: str) -> "BatchingSettings":
        """Read the settings from a parsed TorchServe model-config.yaml, naming it `source` in errors."""
        handler = config.get("handler") or {}
        settings = cls(
            max_batch_size=_require_int(config, "batchSize", source, minimum=1),
            max_batch_delay_ms=_require_int(config, "maxBatchDelay", source, minimum=0),
            instance_count=_require_int(config, "minWorkers", source, minimum=1),
            device=str(handler.get("device", "cpu")),
            intra_op_threads=_optional_int(handler, "intra_op_threads", source),
        )
        if settings.device not in INSTANCE_KINDS:
            raise ValueError(
                f"{source}: handler.device is {settings.device!r}; expected one of {', '.join(INSTANCE_KINDS)}."
            )
        return settings


def _require_int(config: Mapping, key: str, source: str, minimum: int) -> int:
    value = config.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{source}: {key} must be an integer >= {minimum}, got {value!r}.")
    return value


def _optional_int(config: Mapping, key: str, source: str) -> int | None:
    """Return a positive thread count, or None for absent or 0 (the handler's "choose automatically")."""
    value = config.get(key)
    if value is None or value == 0:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{source}: handler.{key} must be an integer >= 0 or absent, got {value!r}.")
    return value


def load_model_config(path: Path) -> dict:
    """Parse a TorchServe model-config.yaml file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"TorchServe model config not found: {path}. Pass it with --model-config NAME=PATH."
        )
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(config, dict):
        raise ValueError(f"{path} must contain a YAML mapping, got {type(config).__name__}.")
    return config


def triton_dims(shape: list, tensor_name: str) -> list[int]:
    """Convert an ONNX shape with a leading batch axis to Triton dims, which leave the batch axis out.

    A fixed first axis raises ValueError, because Triton's dynamic batcher stacks
    requests along it. Other dynamic axes become -1.
    """
    if not shape:
        raise ValueError(f"Tensor {tensor_name!r} is a scalar; Triton batching needs a leading batch axis.")
    if isinstance(shape[0], int):
        raise ValueError(
            f"Tensor {tensor_name!r} has a fixed first axis of size {shape[0]}; export the model with a "
            "dynamic batch axis so Triton can batch requests."
        )
    return [dim if isinstance(dim, int) else -1 for dim in shape[1:]]


def triton_data_type(dtype: str, tensor_name: str) -> str:
    """Map a manifest dtype name (NumPy name or "string") to a Triton data type."""
    try:
        return TRITON_DATA_TYPES[dtype]
    except KeyError:
        raise ValueError(
            f"Tensor {tensor_name!r} has dtype {dtype!r}, which has no Triton data type; "
            f"supported: {', '.join(TRITON_DATA_TYPES)}."
        ) from None


def render_model_config(
    model_name: str,
    inputs: list[dict],
    outputs: list[dict],
    settings: BatchingSettings,
    label_filename: str | None = None,
    max_queue_size: int | None = None,
) -> str:
    """Write a Triton config.pbtxt (protobuf text format) for an ONNX model with a dynamic batch axis.

    `inputs` and `outputs` are tensor descriptions {"name", "shape", "dtype"} with the
    batch axis first. `label_filename`, when given, is attached to the first output,
    which turns on Triton's classification extension for it.
    """
    lines = [
        f'name: "{_safe_name(model_name)}"',
        'backend: "onnxruntime"',
        f'default_model_filename: "{TRITON_MODEL_FILE}"',
        f"max_batch_size: {settings.max_batch_size}",
    ]
    lines += _render_tensors("input", inputs, label_filename=None)
    lines += _render_tensors("output", outputs, label_filename=label_filename)
    lines += _render_dynamic_batching(settings, max_queue_size)
    lines += [
        "instance_group [",
        "  {",
        f"    count: {settings.instance_count}",
        f"    kind: {INSTANCE_KINDS[settings.device]}",
        "  }",
        "]",
    ]
    if settings.intra_op_threads is not None:
        lines += [
            "parameters {",
            '  key: "intra_op_thread_count"',
            f'  value: {{ string_value: "{settings.intra_op_threads}" }}',
            "}",
        ]
    return "\n".join(lines) + "\n"


def _render_tensors(field: str, tensors: list[dict], label_filename: str | None) -> list[str]:
    lines = [f"{field} ["]
    for index, tensor in enumerate(tensors):
        name = _safe_name(tensor["name"])
        dims = ", ".join(str(dim) for dim in triton_dims(tensor["shape"], name))
        lines += [
            "  {",
            f'    name: "{name}"',
            f"    data_type: {triton_data_type(tensor['dtype'], name)}",
            f"    dims: [ {dims} ]",
        ]
        if label_filename is not None and index == 0:
            lines.append(f'    label_filename: "{_safe_name(label_filename)}"')
        lines.append("  }," if index < len(tensors) - 1 else "  }")
    lines.append("]")
    return lines


def _render_dynamic_batching(settings: BatchingSettings, max_queue_size: int | None) -> list[str]:
    lines = [
        "dynamic_batching {",
        f"  max_queue_delay_microseconds: {settings.max_batch_delay_ms * 1000}",
    ]
    if max_queue_size is not None:
        # Triton rejects a request when the queue is full, as TorchServe returns 503
        # once job_queue_size requests are waiting.
        lines += [
            "  default_queue_policy {",
            f"    max_queue_size: {max_queue_size}",
            "  }",
        ]
    lines.append("}")
    return lines


def _safe_name(name: str) -> str:
    if not SAFE_NAME.match(name):
        raise ValueError(f"Name {name!r} is not usable in a Triton repository; use letters, digits, '_', '.' and '-'.")
    return name


def export_triton_repository(
    model_dirs: Iterable[Path],
    out_dir: Path,
    *,
    profile: str = "cpu",
    model_configs: Mapping[str, Mapping] | None = None,
    max_queue_size: int | None = None,
) -> Path:
    """Write a Triton model repository for exported ONNX models and return `out_dir`.

    `model_dirs` are export directories, each with model.onnx and manifest.json. Each
    model's batching settings come from its model_store profile `profile` ("cpu" or
    "gpu"), unless `model_configs` maps its name to a parsed model-config.yaml.
    `max_queue_size` is TorchServe's job_queue_size, applied to every model when given.
    """
    model_dirs = [Path(directory) for directory in model_dirs]
    if not model_dirs:
        raise ValueError("No model directories given; pass the export directories of the models to serve.")
    if profile not in PROFILES:
        raise ValueError(f"profile is {profile!r}; expected one of {', '.join(PROFILES)}.")
    if max_queue_size is not None and max_queue_size < 1:
        raise ValueError(f"max_queue_size must be a positive integer or None, got {max_queue_size!r}.")

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = set()
    for model_dir in model_dirs:
        name = _export_model(model_dir, out_dir, profile, model_configs or {}, max_queue_size)
        if name in written:
            raise ValueError(f"Two model directories export the model name {name!r}; each Triton model needs its own name.")
        written.add(name)
    return out_dir


def _export_model(
    model_dir: Path,
    out_dir: Path,
    profile: str,
    model_configs: Mapping[str, Mapping],
    max_queue_size: int | None,
) -> str:
    manifest = read_manifest(model_dir)
    name = _safe_name(manifest["model_name"])
    onnx_path = _verified_onnx_path(model_dir, manifest)
    settings = _batching_settings(name, profile, model_configs)

    inputs, outputs = describe_onnx_tensors(onnx_path)
    _check_manifest_names(manifest, inputs, outputs, onnx_path)
    is_classifier = manifest["task"] == TASK_IMAGE_CLASSIFICATION
    config_text = render_model_config(
        name,
        inputs,
        outputs,
        settings,
        label_filename=LABELS_NAME if is_classifier else None,
        max_queue_size=max_queue_size,
    )

    model_root = _fresh_model_root(out_dir / name)
    (model_root / VERSION_DIR).mkdir()
    shutil.copyfile(onnx_path, model_root / VERSION_DIR / TRITON_MODEL_FILE)
    shutil.copyfile(Path(model_dir) / MANIFEST_NAME, model_root / MANIFEST_NAME)
    if is_classifier:
        (model_root / LABELS_NAME).write_text("\n".join(manifest["labels"]) + "\n", encoding="utf-8")
    (model_root / CONFIG_NAME).write_text(config_text, encoding="utf-8")

    logger.info(
        "Wrote Triton model %s to %s (max_batch_size %d, delay %d ms, %d x %s)",
        name,
        model_root,
        settings.max_batch_size,
        settings.max_batch_delay_ms,
        settings.instance_count,
        INSTANCE_KINDS[settings.device],
    )
    return name


def _verified_onnx_path(model_dir: Path, manifest: dict) -> Path:
    onnx_path = Path(model_dir) / manifest["onnx_file"]
    if not onnx_path.is_file():
        raise FileNotFoundError(f"{onnx_path} not found; its manifest names it. Export the model again.")
    digest = file_sha256(onnx_path)
    if digest != manifest["onnx_sha256"]:
        raise ValueError(
            f"{onnx_path} has SHA-256 {digest}, but its manifest records {manifest['onnx_sha256']}; "
            "the file changed after export. Export the model again."
        )
    return onnx_path


def _batching_settings(name: str, profile: str, model_configs: Mapping[str, Mapping]) -> BatchingSettings:
    if name in model_configs:
        return BatchingSettings.from_model_config(model_configs[name], source=f"model config for {name}")

    kinds = [kind for kind, spec in KINDS.items() if spec.model_name == name]
    if not kinds:
        raise ValueError(
            f"No model_store profile exists for model {name!r}; pass its model-config.yaml with --model-config {name}=PATH."
        )
    return BatchingSettings.from_model_config(model_config(kinds[0], profile), source=f"profile {profile} of {name}")


def _check_manifest_names(manifest: dict, inputs: list[dict], outputs: list[dict], onnx_path: Path) -> None:
    for key, tensors in (("inputs", inputs), ("outputs", outputs)):
        expected = [tensor["name"] for tensor in manifest[key]]
        actual = [tensor["name"] for tensor in tensors]
        if expected != actual:
            raise ValueError(
                f"The manifest lists {key} {expected}, but {onnx_path} has {actual}. Export the model again."
            )


def _fresh_model_root(model_root: Path) -> Path:
    """Create an empty model folder, replacing one that an earlier export wrote."""
    if model_root.exists():
        # Only a folder with a config.pbtxt looks like an earlier export; anything else
        # may be the user's data, so it stays.
        if not (model_root / CONFIG_NAME).is_file():
            raise FileExistsError(f"{model_root} exists and is not a Triton model folder; choose another --out.")
        logger.info("Replacing the earlier export in %s", model_root)
        shutil.rmtree(model_root)
    model_root.mkdir(parents=True)
    return model_root


def _parse_model_config_option(option: str) -> tuple[str, dict]:
    name, separator, path = option.partition("=")
    if not separator or not name or not path:
        raise argparse.ArgumentTypeError(f"--model-config expects NAME=PATH, got {option!r}.")
    return name, load_model_config(Path(path))


def main(argv: list[str] | None = None) -> None:
    """Command line: export model directories to a Triton model repository."""
    parser = argparse.ArgumentParser(
        prog="python -m export.triton",
        description="Write a Triton Inference Server model repository from exported ONNX model directories.",
    )
    parser.add_argument("model_dirs", nargs="+", type=Path, help="Export directories, each with model.onnx and manifest.json.")
    parser.add_argument("--out", type=Path, required=True, help="Folder of the Triton model repository to write.")
    parser.add_argument(
        "--profile",
        choices=PROFILES,
        default="cpu",
        help="model_store profile whose batching and device settings to use (default: %(default)s).",
    )
    parser.add_argument(
        "--model-config",
        action="append",
        default=[],
        type=_parse_model_config_option,
        metavar="NAME=PATH",
        help="Flat TorchServe model-config.yaml for model NAME, used instead of its model_store profile.",
    )
    parser.add_argument(
        "--max-queue-size",
        type=int,
        help="Requests that may wait per model before Triton rejects more (TorchServe's job_queue_size); default: unlimited.",
    )
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    out_dir = export_triton_repository(
        args.model_dirs,
        args.out,
        profile=args.profile,
        model_configs=dict(args.model_config),
        max_queue_size=args.max_queue_size,
    )
    print(f"Triton model repository written to {out_dir}")
    print(f"Serve it with: tritonserver --model-repository={out_dir.resolve()}")


if __name__ == "__main__":
    main()
