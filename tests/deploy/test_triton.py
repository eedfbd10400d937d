"""The Triton model repository export, on the demo models trained from the bundled sample."""

import subprocess
import sys

import numpy as np
import onnxruntime as ort
import pytest
from google.protobuf import text_format

from export.manifest import read_manifest
from export.triton import BatchingSettings, export_triton_repository, render_model_config, triton_dims
from model_store.archive import model_config
from tests.conftest import REPO_ROOT
from tests.deploy.triton_config_schema import ModelConfig, parse_model_config

CLASSIFIER = "fashion_classifier"
PRICE = "price_regressor"
BATCH = 3


@pytest.fixture(scope="module")
def cpu_repository(demo_models, tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("triton_cpu")
    return export_triton_repository([demo_models.classifier_dir, demo_models.price_dir], out_dir, max_queue_size=100)


def read_config(repository, name) -> ModelConfig:
    return parse_model_config((repository / name / "config.pbtxt").read_text(encoding="utf-8"))


def test_repository_layout(cpu_repository, demo_models):
    for name, source in ((CLASSIFIER, demo_models.classifier_dir), (PRICE, demo_models.price_dir)):
        model_root = cpu_repository / name
        assert (model_root / "config.pbtxt").is_file()
        assert (model_root / "1" / "model.onnx").read_bytes() == (source / "model.onnx").read_bytes()
        assert (model_root / "manifest.json").read_bytes() == (source / "manifest.json").read_bytes()

    labels = (cpu_repository / CLASSIFIER / "labels.txt").read_text(encoding="utf-8").splitlines()
    assert labels == read_manifest(demo_models.classifier_dir)["labels"]
    assert not (cpu_repository / PRICE / "labels.txt").exists()


def test_classifier_config_names_image_and_probabilities(cpu_repository, demo_models):
    config = read_config(cpu_repository, CLASSIFIER)
    manifest = read_manifest(demo_models.classifier_dir)
    height, width = manifest["preprocessing"]["resize"]

    assert config.name == CLASSIFIER
    assert config.backend == "onnxruntime"
    assert [tensor.name for tensor in config.input] == ["image"]
    assert data_type_name(config.input[0].data_type) == "TYPE_FP32"
    assert list(config.input[0].dims) == [3, height, width]

    assert [tensor.name for tensor in config.output] == ["probabilities"]
    assert data_type_name(config.output[0].data_type) == "TYPE_FP32"
    assert list(config.output[0].dims) == [len(manifest["labels"])]
    assert config.output[0].label_filename == "labels.txt"


def test_price_config_names_string_fields_and_variable(cpu_repository, demo_models):
    config = read_config(cpu_repository, PRICE)
    fields = [field["name"] for field in read_manifest(demo_models.price_dir)["fields"]]

    assert config.name == PRICE
    assert [tensor.name for tensor in config.input] == fields
    assert {data_type_name(tensor.data_type) for tensor in config.input} == {"TYPE_STRING"}
    assert all(list(tensor.dims) == [1] for tensor in config.input)
    assert [tensor.name for tensor in config.output] == ["variable"]
    assert data_type_name(config.output[0].data_type) == "TYPE_FP32"
    assert list(config.output[0].dims) == [1]
    assert config.output[0].label_filename == ""


@pytest.mark.parametrize("name,kind", [(CLASSIFIER, "classifier"), (PRICE, "price")])
def test_batching_matches_the_torchserve_cpu_profile(cpu_repository, name, kind):
    config = read_config(cpu_repository, name)
    torchserve = model_config(kind, "cpu")

    assert config.max_batch_size == torchserve["batchSize"]
    assert config.dynamic_batching.max_queue_delay_microseconds == torchserve["maxBatchDelay"] * 1000
    assert config.dynamic_batching.default_queue_policy.max_queue_size == 100
    assert len(config.instance_group) == 1
    assert config.instance_group[0].count == torchserve["minWorkers"]
    assert instance_kind_name(config.instance_group[0].kind) == "KIND_CPU"

    threads = torchserve["handler"]["intra_op_threads"]
    if threads:
        assert config.parameters["intra_op_thread_count"].string_value == str(threads)
    else:
        assert "intra_op_thread_count" not in config.parameters


def test_gpu_profile_device_kinds(demo_models, tmp_path):
    repository = export_triton_repository([demo_models.classifier_dir, demo_models.price_dir], tmp_path, profile="gpu")
    classifier = read_config(repository, CLASSIFIER)
    price = read_config(repository, PRICE)

    assert instance_kind_name(classifier.instance_group[0].kind) == "KIND_GPU"
    assert classifier.max_batch_size == model_config("classifier", "gpu")["batchSize"]
    assert classifier.dynamic_batching.max_queue_delay_microseconds == model_config("classifier", "gpu")["maxBatchDelay"] * 1000
    # The price model's string inputs have no CUDA kernels, so its gpu profile keeps it on the CPU.
    assert instance_kind_name(price.instance_group[0].kind) == "KIND_CPU"
    assert not price.dynamic_batching.HasField("default_queue_policy")


@pytest.mark.parametrize("name", [CLASSIFIER, PRICE])
def test_config_shapes_fit_the_model_file(cpu_repository, name):
    # What Triton does at load time, done with ONNX Runtime: feed a batch shaped by the
    # config's dims and compare the outputs with the config's output dims.
    config = read_config(cpu_repository, name)
    session = ort.InferenceSession(str(cpu_repository / name / "1" / "model.onnx"), providers=["CPUExecutionProvider"])

    feeds = {tensor.name: example_batch(tensor) for tensor in config.input}
    outputs = session.run([tensor.name for tensor in config.output], feeds)

    for tensor, array in zip(config.output, outputs):
        assert list(array.shape) == [BATCH, *tensor.dims]
        assert array.dtype == np.float32


def test_parser_rejects_an_unknown_field():
    with pytest.raises(text_format.ParseError):
        parse_model_config('name: "x"\nmax_batch_sise: 4\n')
    with pytest.raises(text_format.ParseError):
        parse_model_config('name: "x"\ninput [ { name: "a" data_type: TYPE_TEXT dims: [ 1 ] } ]\n')


def test_triton_dims_rejects_a_fixed_batch_axis():
    assert triton_dims(["batch", 3, 64, 64], "image") == [3, 64, 64]
    assert triton_dims([None, "height", 1], "x") == [-1, 1]
    with pytest.raises(ValueError, match="fixed first axis"):
        triton_dims([1, 3, 64, 64], "image")


def test_render_rejects_an_unsupported_dtype():
    settings = BatchingSettings(max_batch_size=4, max_batch_delay_ms=5, instance_count=1, device="cpu")
    with pytest.raises(ValueError, match="complex64"):
        render_model_config("m", [{"name": "x", "shape": [None, 2], "dtype": "complex64"}], [], settings)


def test_changed_onnx_file_is_rejected(demo_models, tmp_path):
    copy = tmp_path / "classifier"
    copy.mkdir()
    for name in ("model.onnx", "manifest.json"):
        (copy / name).write_bytes((demo_models.classifier_dir / name).read_bytes())
    with open(copy / "model.onnx", "ab") as stream:
        stream.write(b"\0")

    with pytest.raises(ValueError, match="SHA-256"):
        export_triton_repository([copy], tmp_path / "repository")


def test_foreign_folder_is_kept(demo_models, tmp_path):
    foreign = tmp_path / CLASSIFIER
    foreign.mkdir()
    (foreign / "notes.txt").write_text("not a Triton model", encoding="utf-8")

    with pytest.raises(FileExistsError):
        export_triton_repository([demo_models.classifier_dir], tmp_path)
    assert (foreign / "notes.txt").read_text(encoding="utf-8") == "not a Triton model"


def test_second_export_replaces_the_first(demo_models, tmp_path):
    export_triton_repository([demo_models.price_dir], tmp_path)
    (tmp_path / PRICE / "1" / "stale.onnx").write_bytes(b"old")
    export_triton_repository([demo_models.price_dir], tmp_path, profile="gpu")
    assert not (tmp_path / PRICE / "1" / "stale.onnx").exists()
    assert (tmp_path / PRICE / "config.pbtxt").is_file()


def test_command_line_writes_the_repository(demo_models, tmp_path):
    result = subprocess.run(
        [
            sys.executable, "-m", "export.triton",
            str(demo_models.classifier_dir), str(demo_models.price_dir),
            "--out", str(tmp_path), "--profile", "gpu", "--max-queue-size", "50",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    config = read_config(tmp_path, CLASSIFIER)
    assert instance_kind_name(config.instance_group[0].kind) == "KIND_GPU"
    assert config.dynamic_batching.default_queue_policy.max_queue_size == 50


def data_type_name(number: int) -> str:
    field = ModelConfig.DESCRIPTOR.fields_by_name["input"].message_type.fields_by_name["data_type"]
    return field.enum_type.values_by_number[number].name


def instance_kind_name(number: int) -> str:
    field = ModelConfig.DESCRIPTOR.fields_by_name["instance_group"].message_type.fields_by_name["kind"]
    return field.enum_type.values_by_number[number].name


def example_batch(tensor) -> np.ndarray:
    shape = [BATCH, *[dim if dim > 0 else 1 for dim in tensor.dims]]
    if data_type_name(tensor.data_type) == "TYPE_STRING":
        return np.full(shape, "Strap top in soft cotton jersey", dtype=object)
    return np.random.default_rng(0).standard_normal(shape).astype(np.float32)
