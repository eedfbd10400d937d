"""Export of a price run's scikit-learn pipeline to ONNX, checked for parity on real and awkward rows.

The ONNX graph has one string input per schema field, named as the field and of shape
[N, 1]. Its one output "variable", float32 [N, 1], is log1p(price), and the server
applies expm1. Two ONNX Runtime facts shape the conversion:

- ONNX Runtime's StringNormalizer (the lower-casing step of TF-IDF) needs a locale
  that exists on the machine that runs the model. skl2onnx leaves it unset, so ONNX
  Runtime falls back to en_US, which minimal images lack. The export sets C.UTF-8.
- Its tokenizer matches `\\w` against ASCII only, so the pipeline uses an explicit
  ASCII token pattern (see training/price/pipeline.py).

The export compares ONNX Runtime's prices with scikit-learn's on real rows of the
data set and on rows with accents, emoji, empty and very long text, and raises
ParityError (leaving no model.onnx behind) when they differ by more than the tolerance.
"""

import argparse
import json
import logging
import statistics
import time
from pathlib import Path

import joblib
import numpy as np
import onnxruntime as ort
import pandas as pd
import skl2onnx
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import StringTensorType
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import Pipeline

from export.manifest import TASK_PRICE_REGRESSION, build_manifest, describe_onnx_tensors, file_sha256, write_manifest
from training.price.adapters import CATEGORY, TEXT, frame_from_records, load_price_dataset
from training.price.train import METRICS_NAME, PIPELINE_NAME, SCHEMA_NAME

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLE_ROOT = REPO_ROOT / "training" / "sample"
DEFAULT_OUT = REPO_ROOT / "runs" / "export" / "price_regressor"

ONNX_NAME = "model.onnx"
MODEL_NAME = "price_regressor"
OUTPUT_NAME = "variable"
ONNX_LOCALE = "C.UTF-8"
# Opset 18 matches the classifier export, and ai.onnx.ml 3 is skl2onnx 1.20's default for it.
TARGET_OPSET = {"": 18, "ai.onnx.ml": 3}

PARITY_TOLERANCE = 1e-4
# Up to this many real rows, drawn with a fixed seed. Converter mismatches can hit
# one row in a thousand, so a few dozen rows are not enough.
PARITY_REAL_ROWS = 5000
PARITY_SEED = 0
# Rows per ONNX Runtime call, which bounds the dense TF-IDF matrix in memory.
PARITY_BATCH_ROWS = 500
# Prices below this are compared by absolute difference, so a prediction near zero
# cannot turn a rounding difference into a large relative one.
PARITY_PRICE_FLOOR = 1e-3
LATENCY_RUNS = 200


class ParityError(RuntimeError):
    """The ONNX model's prices differ from the scikit-learn pipeline's by more than the tolerance."""


def load_run(run_dir: Path) -> tuple[Pipeline, dict, dict]:
    """Read a price run folder: the fitted pipeline, schema.json and metrics.json."""
    run_dir = Path(run_dir)
    missing = [name for name in (PIPELINE_NAME, SCHEMA_NAME, METRICS_NAME) if not (run_dir / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"price run folder {run_dir} is missing {', '.join(missing)}; train one with "
            "`python -m training price --dataset DATASET --out DIR`."
        )

    # joblib unpickles, which runs code from the file: only load run folders you created.
    pipeline = joblib.load(run_dir / PIPELINE_NAME)
    schema = json.loads((run_dir / SCHEMA_NAME).read_text())
    metrics = json.loads((run_dir / METRICS_NAME).read_text())
    return pipeline, schema, metrics


def convert_pipeline(pipeline: Pipeline, field_names: list[str]):
    """Convert the pipeline to an ONNX ModelProto with one [N, 1] string input per field."""
    initial_types = [(name, StringTensorType([None, 1])) for name in field_names]
    return convert_sklearn(
        pipeline,
        initial_types=initial_types,
        options={TfidfVectorizer: {"locale": ONNX_LOCALE}},
        target_opset=TARGET_OPSET,
    )


def awkward_rows(base: dict[str, str], fields: list[dict]) -> list[dict[str, str]]:
    """Derive rows that stress the text path from one real row: accents, emoji, empty and very long text, and more.

    NOTE: no row contains U+0130 (capital I with dot above), because the two sides
    disagree on it. Python lower-cases it to "i" plus a combining dot, so scikit-learn
    splits "İstanbul" into the tokens "i" and "stanbul". ONNX Runtime keeps "istanbul".
    It is the only character whose lower-case form is longer than one character.
    """
    text_fields = [field for field in fields if field["kind"] == TEXT]
    category_fields = [field for field in fields if field["kind"] == CATEGORY]
    name, description = base.get("name", ""), base.get("description", "")

    long_row = dict(base)
    for field in text_fields:
        seed_text = (base.get(field["name"]) or "cotton jersey top") + " "
        long_row[field["name"]] = (seed_text * (field["max_length"] // len(seed_text) + 1))[: field["max_length"]]

    return [
        {**base, "name": "Café crème naïve – ÉCRU Öl jacket", "description": "Größe M, façade-style Übergröße: très chic."},
        {**base, "name": f"{name} 🔥👗", "description": f"✨ {description} 💯"},
        {field["name"]: "" for field in fields},
        {"name": name},
        long_row,
        {**base, **{field["name"]: "unseen category ü" for field in category_fields}},
        {**base, "name": f"\t{name}\n\r  ", "description": f"{description}\u00a0with\u200bzero-width space"},
        {**base, "name": "連衣裙 فستان платье dress", "description": "日本語の説明 and some English words"},
        {**base, "name": name.upper(), "description": description.upper()},
        {**base, "name": "100% cotton, size 38/40 -- 2-pack!!!", "description": "K\u212a-size Straße ǅ"},
    ]


def parity_rows(schema: dict, data_root: Path | None = None) -> pd.DataFrame:
    """Build the parity rows: up to PARITY_REAL_ROWS real rows of the run's data set plus awkward_rows of the first.

    The real rows come from `data_root`, by default the bundled sample.
    """
    data = load_price_dataset(schema["dataset"], Path(data_root) if data_root is not None else SAMPLE_ROOT)
    real = data.features
    if len(real) > PARITY_REAL_ROWS:
        real = real.sample(n=PARITY_REAL_ROWS, random_state=PARITY_SEED)

    awkward = frame_from_records(awkward_rows(data.features.iloc[0].to_dict(), schema["fields"]), schema["fields"])
    return pd.concat([real, awkward], ignore_index=True)


def onnx_feeds(rows: pd.DataFrame, field_names: list[str]) -> dict[str, np.ndarray]:
    """Shape a feature frame as ONNX Runtime inputs: one object array [N, 1] per field."""
    return {name: rows[name].to_numpy(dtype=object).reshape(-1, 1) for name in field_names}


def _session(onnx_path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    # One thread, as a server worker would use it, which also keeps the latency figure comparable.
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])


def check_parity(onnx_path: Path, pipeline: Pipeline, rows: pd.DataFrame, field_names: list[str], tolerance: float = PARITY_TOLERANCE) -> float:
    """Compare ONNX Runtime's prices with scikit-learn's on `rows`; return the maximum relative difference.

    Prices are expm1 of each model's output. Raises ParityError when a row differs by
    more than `tolerance`, naming the worst row.
    """
    session = _session(onnx_path)
    expected = np.expm1(pipeline.predict(rows))

    outputs = []
    for start in range(0, len(rows), PARITY_BATCH_ROWS):
        batch = rows.iloc[start : start + PARITY_BATCH_ROWS]
        output = session.run([OUTPUT_NAME], onnx_feeds(batch, field_names))[0]
        if output.shape != (len(batch), 1):
            raise ParityError(f"ONNX output {OUTPUT_NAME!r} has shape {output.shape}; expected ({len(batch)}, 1).")
        outputs.append(output[:, 0])
    actual = np.expm1(np.concatenate(outputs).astype(np.float64))
    difference = np.abs(actual - expected) / np.maximum(np.abs(expected), PARITY_PRICE_FLOOR)
    worst = int(np.argmax(difference))
    max_difference = float(difference[worst])
    logger.info("Parity on %d rows: max relative price difference %.3g", len(rows), max_difference)

    if not max_difference <= tolerance:
        row = {name: rows[name].iloc[worst][:80] for name in field_names}
        raise ParityError(
            f"ONNX price differs from scikit-learn's by {max_difference:.3g} (relative) on row {worst} {row}: "
            f"{actual[worst]:.6g} vs {expected[worst]:.6g}, over the tolerance {tolerance:g}. Check the "
            "vectorizer settings against the list in training/price/pipeline.py and the converter's warnings."
        )
    return max_difference


def measure_latency_ms(onnx_path: Path, rows: pd.DataFrame, field_names: list[str], runs: int = LATENCY_RUNS) -> float:
    """Return the median wall time in ms of one-row ONNX Runtime runs on one thread, after one warm-up run."""
    session = _session(onnx_path)
    feeds = onnx_feeds(rows.head(1), field_names)
    session.run([OUTPUT_NAME], feeds)

    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        session.run([OUTPUT_NAME], feeds)
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings)


def export_price_model(
    run_dir: Path,
    out_dir: Path,
    data_root: Path | None = None,
    model_name: str = MODEL_NAME,
    model_version: str = "1.0",
    tolerance: float = PARITY_TOLERANCE,
) -> Path:
    """Export a price run to `out_dir`/model.onnx with its manifest; returns the manifest path.

    `data_root` is where the real parity rows come from (default: the bundled sample).
    The ONNX file is deleted again when parity fails, so `out_dir` never contains an
    unchecked model.
    """
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    pipeline, schema, metrics = load_run(run_dir)
    field_names = [field["name"] for field in schema["fields"]]
    rows = parity_rows(schema, data_root)

    out_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = out_dir / ONNX_NAME
    onnx_path.write_bytes(convert_pipeline(pipeline, field_names).SerializeToString())
    try:
        max_difference = check_parity(onnx_path, pipeline, rows, field_names, tolerance)
    except ParityError:
        onnx_path.unlink()
        raise

    latency_ms = measure_latency_ms(onnx_path, rows, field_names)
    logger.info("Exported %s (%.2f MB); one row takes %.2f ms on one thread", onnx_path, onnx_path.stat().st_size / 1e6, latency_ms)

    inputs, outputs = describe_onnx_tensors(onnx_path)
    manifest = build_manifest(
        model_name=model_name,
        model_version=model_version,
        task=TASK_PRICE_REGRESSION,
        onnx_file=ONNX_NAME,
        onnx_sha256=file_sha256(onnx_path),
        inputs=inputs,
        outputs=outputs,
        fields=schema["fields"],
        target=schema["target"],
        training={
            "run": run_dir.name,
            "dataset": schema["dataset"],
            "arch": metrics["regressor"],
            "metrics": metrics["validation"],
        },
        export={
            "converter": f"skl2onnx {skl2onnx.__version__}",
            "opset": TARGET_OPSET,
            "tfidf_locale": ONNX_LOCALE,
            "parity_rows": len(rows),
            "parity_max_relative_difference": max_difference,
            # Measured on the machine that ran the export, so only a rough guide for the server.
            "single_row_latency_ms": round(latency_ms, 3),
        },
    )
    return write_manifest(out_dir, manifest)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the price export options to `parser` (for `python -m export price`)."""
    parser.add_argument("--run", dest="run_dir", type=Path, required=True, help="price run folder with price_model.joblib, schema.json and metrics.json")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for model.onnx and manifest.json (default: runs/export/price_regressor in the repository)")
    parser.add_argument(
        "--data-root", type=Path, default=None,
        help="data root whose rows of the run's data set feed the parity check (default: the bundled sample in training/sample)",
    )  # fmt: skip
    parser.add_argument("--model-version", default="1.0", help="model version written to the manifest (default: %(default)s)")
    parser.add_argument("--tolerance", type=float, default=PARITY_TOLERANCE, help="largest allowed relative price difference between ONNX and scikit-learn (default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    """Export the price run named by the parsed options and print the manifest path."""
    manifest_path = export_price_model(
        args.run_dir,
        args.out,
        data_root=args.data_root,
        model_version=args.model_version,
        tolerance=args.tolerance,
    )
    print(manifest_path)
    return 0
