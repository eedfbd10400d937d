"""Price pipeline export: ONNX parity with scikit-learn on real and awkward rows, manifest, failure paths."""

import json
import shutil

import joblib
import numpy as np
import onnxruntime as ort
import pytest

from export.__main__ import main as export_main
from export.manifest import file_sha256, read_manifest
from export.price import (
    ONNX_NAME,
    OUTPUT_NAME,
    PARITY_TOLERANCE,
    ParityError,
    awkward_rows,
    check_parity,
    export_price_model,
    load_run,
    onnx_feeds,
)
from training.price.adapters import frame_from_records, load_price_dataset
from training.price.train import PIPELINE_NAME, SCHEMA_NAME, train_price_model


@pytest.fixture(scope="module")
def price_run(sample_root, tmp_path_factory):
    return train_price_model("hm", data_root=sample_root, out_dir=tmp_path_factory.mktemp("price-run"), candidates=("ridge-3",))


@pytest.fixture(scope="module")
def price_export(price_run, tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("price-export")
    export_price_model(price_run, out_dir, model_version="test")
    return out_dir


def relative_price_difference(onnx_path, pipeline, rows, field_names) -> np.ndarray:
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    onnx_price = np.expm1(session.run([OUTPUT_NAME], onnx_feeds(rows, field_names))[0][:, 0].astype(np.float64))
    sklearn_price = np.expm1(pipeline.predict(rows))
    return np.abs(onnx_price - sklearn_price) / sklearn_price


def test_manifest_describes_price_model(price_run, price_export):
    manifest = read_manifest(price_export)
    schema = json.loads((price_run / SCHEMA_NAME).read_text())

    assert manifest["task"] == "price-regression"
    assert manifest["model_name"] == "price_regressor"
    assert manifest["model_version"] == "test"
    assert manifest["onnx_file"] == ONNX_NAME
    assert manifest["onnx_sha256"] == file_sha256(price_export / ONNX_NAME)
    assert manifest["fields"] == schema["fields"]
    assert manifest["target"] == schema["target"]
    assert manifest["inputs"] == [{"name": field["name"], "shape": [None, 1], "dtype": "string"} for field in schema["fields"]]
    assert manifest["outputs"] == [{"name": OUTPUT_NAME, "shape": [None, 1], "dtype": "float32"}]
    assert manifest["training"]["dataset"] == "hm"
    assert manifest["training"]["metrics"]["model"]["rmse_log"] > 0
    assert manifest["export"]["parity_max_relative_difference"] <= PARITY_TOLERANCE


def test_parity_on_awkward_rows(price_run, price_export, sample_root):
    pipeline, schema, _ = load_run(price_run)
    field_names = [field["name"] for field in schema["fields"]]
    real = load_price_dataset("hm", sample_root).features
    records = [row for index in range(3) for row in awkward_rows(real.iloc[index].to_dict(), schema["fields"])]
    rows = frame_from_records(records, schema["fields"])

    difference = relative_price_difference(price_export / ONNX_NAME, pipeline, rows, field_names)

    for index, value in enumerate(difference):
        assert value <= PARITY_TOLERANCE, f"row {index} {records[index]} differs by {value:.3g}"


def test_parity_on_real_rows(price_run, price_export, sample_root):
    pipeline, schema, _ = load_run(price_run)
    field_names = [field["name"] for field in schema["fields"]]
    rows = load_price_dataset("hm", sample_root).features

    difference = relative_price_difference(price_export / ONNX_NAME, pipeline, rows, field_names)

    assert difference.max() <= PARITY_TOLERANCE


def test_awkward_rows_cover_hard_text(sample_root):
    fields = [field.to_dict() for field in load_price_dataset("hm", sample_root).fields]
    rows = awkward_rows({"name": "Strap top", "description": "Jersey top."}, fields)
    texts = [row.get("name", "") + row.get("description", "") for row in rows]

    assert any("é" in text for text in texts)
    assert any("🔥" in text for text in texts)
    assert any(all(value == "" for value in row.values()) for row in rows)
    assert any(len(row.get("description", "")) == field["max_length"] for row in rows for field in fields if field["name"] == "description")


def test_onnx_batch_matches_single_rows(price_export, sample_root):
    manifest = read_manifest(price_export)
    field_names = [field["name"] for field in manifest["fields"]]
    rows = load_price_dataset("hm", sample_root).features.head(5)
    session = ort.InferenceSession(str(price_export / ONNX_NAME), providers=["CPUExecutionProvider"])

    batch = session.run([OUTPUT_NAME], onnx_feeds(rows, field_names))[0]
    singles = np.concatenate([session.run([OUTPUT_NAME], onnx_feeds(rows.iloc[[index]], field_names))[0] for index in range(5)])

    assert batch.shape == (5, 1)
    np.testing.assert_allclose(batch, singles, rtol=1e-6)


def test_parity_check_catches_other_model(price_run, price_export, sample_root, tmp_path):
    other_run = train_price_model("hm", data_root=sample_root, out_dir=tmp_path / "other", candidates=("ridge-0.3",))
    other_pipeline, schema, _ = load_run(other_run)
    field_names = [field["name"] for field in schema["fields"]]
    rows = load_price_dataset("hm", sample_root).features.head(20)

    with pytest.raises(ParityError, match="over the tolerance"):
        check_parity(price_export / ONNX_NAME, other_pipeline, rows, field_names)


def test_export_fails_on_sublinear_tf(price_run, sample_root, tmp_path):
    # skl2onnx's TF-IDF graph does not reproduce sublinear_tf, which is why the
    # pipeline avoids it. A run that uses it anyway must not export.
    run_dir = tmp_path / "run"
    shutil.copytree(price_run, run_dir)
    pipeline, _, _ = load_run(run_dir)
    dataset = load_price_dataset("hm", sample_root)
    pipeline.set_params(features__name__sublinear_tf=True, features__description__sublinear_tf=True)
    pipeline.fit(dataset.features, np.log1p(dataset.price))
    joblib.dump(pipeline, run_dir / PIPELINE_NAME)
    out_dir = tmp_path / "export"

    with pytest.raises(ParityError):
        export_price_model(run_dir, out_dir)
    assert not (out_dir / ONNX_NAME).exists()


def test_missing_run_files_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="price_model.joblib"):
        export_price_model(tmp_path, tmp_path / "out")


# 40 epochs on the 400-row sample stop before convergence, which is fine for a conversion test.
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_cli_exports_mlp(sample_root, tmp_path, capsys):
    # The MLP converts to a different ONNX graph (MatMul and Relu) from the linear models'.
    run_dir = train_price_model("mercari", data_root=sample_root, out_dir=tmp_path / "run", candidates=("mlp",))
    out_dir = tmp_path / "export"

    assert export_main(["price", "--run", str(run_dir), "--out", str(out_dir)]) == 0

    assert capsys.readouterr().out.strip() == str(out_dir / "manifest.json")
    assert read_manifest(out_dir)["training"]["arch"] == "mlp"
