"""Price model training on the bundled sample: run folder, metrics, selection, split and the pipeline itself."""

import json
import math
import re

import joblib
import numpy as np
import pandas as pd
import pytest

from training.__main__ import main as training_main
from training.price.adapters import frame_from_records, load_price_dataset
from training.price.metrics import group_median_baseline, price_metrics
from training.price.train import METRICS_NAME, PIPELINE_NAME, SCATTER_NAME, SCHEMA_NAME, grouped_split, train_price_model

# Two fast linear candidates keep the selection step to a few seconds.
SMOKE_CANDIDATES = ("ridge-3", "linear-svr")
FIELD_KEYS = {"name", "kind", "required", "max_length"}


@pytest.fixture(scope="module")
def hm_run(sample_root, tmp_path_factory):
    return train_price_model("hm", data_root=sample_root, out_dir=tmp_path_factory.mktemp("price-hm"), candidates=SMOKE_CANDIDATES)


def finite_numbers(tree) -> list[float]:
    """Collect every number of a nested dict/list, so a test can check that all are finite."""
    if isinstance(tree, dict):
        return [number for value in tree.values() for number in finite_numbers(value)]
    if isinstance(tree, list):
        return [number for value in tree for number in finite_numbers(value)]
    if isinstance(tree, (int, float)) and not isinstance(tree, bool):
        return [tree]
    return []


def test_run_folder_files(hm_run):
    for name in (PIPELINE_NAME, SCHEMA_NAME, METRICS_NAME, SCATTER_NAME):
        assert (hm_run / name).is_file(), f"{name} missing from the run folder"
    assert (hm_run / SCATTER_NAME).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_schema_contract(hm_run, sample_root):
    schema = json.loads((hm_run / SCHEMA_NAME).read_text())
    dataset = load_price_dataset("hm", sample_root)

    assert schema["dataset"] == "hm"
    assert [field["name"] for field in schema["fields"]] == list(dataset.features.columns)
    for field in schema["fields"]:
        assert set(field) == FIELD_KEYS
        assert field["kind"] in ("text", "category")
        assert field["max_length"] > 0
    assert schema["target"] == {"transform": "log1p", "unit": dataset.target.unit, "currency": None}


def test_metrics_finite_and_consistent(hm_run):
    metrics = json.loads((hm_run / METRICS_NAME).read_text())

    numbers = finite_numbers(metrics)
    assert numbers
    assert all(math.isfinite(number) for number in numbers)
    assert set(metrics["validation"]) == {"model", "global_median", "product_type_median"}
    for scores in metrics["validation"].values():
        assert set(scores) == {"rmse_log", "rmsle", "mdape"}
    rows = metrics["rows"]
    assert rows["train"] + rows["validation"] == rows["with_price"]
    assert metrics["feature_count"] > 0


def test_selection_keeps_lowest_score(hm_run):
    metrics = json.loads((hm_run / METRICS_NAME).read_text())
    scores = metrics["selection"]["scores"]

    assert set(scores) == set(SMOKE_CANDIDATES)
    assert metrics["regressor"] == min(scores, key=lambda name: scores[name]["rmse_log"])


def test_pipeline_predicts_awkward_rows(hm_run, sample_root):
    pipeline = joblib.load(hm_run / PIPELINE_NAME)
    fields = json.loads((hm_run / SCHEMA_NAME).read_text())["fields"]
    rows = frame_from_records(
        [
            {"name": "Crème brûlée blouse – Öl", "description": "Bluse aus Baumwolle, très chic 🔥"},
            {"name": "Strap top"},
            {},
            {"name": "x" * 300, "description": "cotton " * 2000, "product_type": "never seen"},
        ],
        fields,
    )

    predicted = np.expm1(pipeline.predict(rows))

    assert predicted.shape == (4,)
    assert np.isfinite(predicted).all()
    assert (predicted > 0).all()


def test_vocabulary_is_ascii(hm_run):
    pipeline = joblib.load(hm_run / PIPELINE_NAME)
    features = pipeline.named_steps["features"]
    vectorizers = [transformer for name, transformer, _ in features.transformers_ if name in ("name", "description")]

    assert len(vectorizers) == 2
    for vectorizer in vectorizers:
        terms = list(vectorizer.vocabulary_)
        assert terms
        assert all(re.fullmatch(r"[a-z0-9]+( [a-z0-9]+)?", term) for term in terms), [t for t in terms if not t.isascii()][:5]


def test_bigram_words_in_vocabulary(hm_run):
    # The ONNX converter matches a bigram only when both of its words are vocabulary terms.
    pipeline = joblib.load(hm_run / PIPELINE_NAME)
    features = pipeline.named_steps["features"]
    vectorizers = [transformer for name, transformer, _ in features.transformers_ if name in ("name", "description")]

    for vectorizer in vectorizers:
        vocabulary = vectorizer.vocabulary_
        bigrams = [term for term in vocabulary if " " in term]
        assert bigrams
        missing = [term for term in bigrams if any(word not in vocabulary for word in term.split(" "))]
        assert missing == []


def test_grouped_split_separates_products(sample_root):
    dataset = load_price_dataset("hm", sample_root)
    remaining, held_out = grouped_split(dataset.groups, 0.2, seed=0)

    assert len(remaining) + len(held_out) == len(dataset.groups)
    assert not set(dataset.groups[remaining]) & set(dataset.groups[held_out])
    assert 0.1 < len(held_out) / len(dataset.groups) < 0.3


def test_grouped_split_rejects_bad_fraction():
    with pytest.raises(ValueError, match="between 0 and 1"):
        grouped_split(np.arange(10), 1.5, seed=0)


@pytest.mark.parametrize("dataset", ["catalogue", "mercari"])
def test_other_datasets_train(dataset, sample_root, tmp_path):
    run_dir = train_price_model(dataset, data_root=sample_root, out_dir=tmp_path, candidates=("ridge-1",))
    metrics = json.loads((run_dir / METRICS_NAME).read_text())
    schema = json.loads((run_dir / SCHEMA_NAME).read_text())

    assert metrics["regressor"] == "ridge-1"
    assert metrics["selection"]["scores"] == {}
    assert all(math.isfinite(number) for number in finite_numbers(metrics["validation"]))
    assert schema["target"]["currency"] == {"catalogue": "INR", "mercari": "USD"}[dataset]


def test_unknown_regressor_rejected(sample_root, tmp_path):
    with pytest.raises(ValueError, match="invalid regressors"):
        train_price_model("hm", data_root=sample_root, out_dir=tmp_path, candidates=("xgboost",))


def test_cli_trains_and_prints(sample_root, tmp_path, capsys):
    out_dir = tmp_path / "run"
    argv = ["price", "--dataset", "mercari", "--data-root", str(sample_root), "--out", str(out_dir), "--regressors", "ridge-1"]

    assert training_main(argv) == 0

    printed = json.loads(capsys.readouterr().out)
    assert printed["run"] == str(out_dir)
    assert printed["regressor"] == "ridge-1"
    assert (out_dir / PIPELINE_NAME).is_file()


def test_price_metrics_on_known_errors():
    true = np.array([10.0, 100.0, 1000.0])

    exact = price_metrics(true, true, price_floor=1.0)
    doubled = price_metrics(true, true * math.e, price_floor=1.0)

    assert exact == {"rmse_log": 0.0, "rmsle": 0.0, "mdape": 0.0}
    assert doubled["rmse_log"] == pytest.approx(1.0)
    assert doubled["mdape"] == pytest.approx(math.e - 1)


def test_price_metrics_floor_negative_predictions():
    scores = price_metrics(np.array([2.0, 4.0]), np.array([-1.0, 4.0]), price_floor=1.0)

    assert scores["rmse_log"] == pytest.approx(math.sqrt(math.log(2.0) ** 2 / 2))
    assert math.isfinite(scores["rmsle"])


def test_group_median_falls_back_to_global():
    train_keys = pd.Series(["top", "top", "shoe"])
    predicted = group_median_baseline(train_keys, np.array([1.0, 3.0, 10.0]), pd.Series(["shoe", "top", "hat"]))

    np.testing.assert_allclose(predicted, [10.0, 2.0, 3.0])
