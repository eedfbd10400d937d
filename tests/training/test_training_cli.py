"""The `python -m training` command line: help, option merging and the light commands."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from training.__main__ import build_parser, classifier_config_from_args, main
from training.classifier import PROFILES
from training.labels import PRODUCT_GROUPS

REPO_ROOT = Path(__file__).resolve().parents[2]


def classifier_config(*options):
    return classifier_config_from_args(build_parser().parse_args(["classifier", *options]))


def test_module_help_lists_commands():
    result = subprocess.run([sys.executable, "-m", "training", "--help"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)

    assert result.returncode == 0, result.stderr
    for command in ("sample", "classifier", "compare", "price"):
        assert command in result.stdout


def test_classifier_help_gives_units(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["classifier", "--help"])

    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "input side in pixels" in text
    assert "budget for training in minutes" in text
    assert "images per batch" in text


def test_price_help_exits_cleanly():
    # Works both before and after the price package exists.
    with pytest.raises(SystemExit) as exit_info:
        main(["price", "--help"])

    assert exit_info.value.code == 0


def test_profile_fills_unset_options():
    config = classifier_config("--profile", "quick", "--arch", "resnet50")

    for key, value in PROFILES["quick"].items():
        assert getattr(config, key) == value, key
    assert config.out_dir == Path("runs") / "resnet50"
    assert config.profile == "quick"


def test_explicit_option_beats_profile():
    config = classifier_config("--profile", "quick", "--image-size", "80", "--lr", "0.01", "--out", "runs/x")

    assert config.image_size == 80
    assert config.learning_rate == 0.01
    assert config.out_dir == Path("runs/x")


def test_no_profile_keeps_config_defaults():
    config = classifier_config()

    assert config.image_size == 224
    assert config.labels == PRODUCT_GROUPS


def test_labels_all_keeps_every_group():
    assert classifier_config("--labels", "all").labels is None


def test_sample_command_writes_layout(sample_root, tmp_path, capsys):
    code = main(["sample", "--source", str(sample_root), "--dest", str(tmp_path), "--photos-per-class", "3"])

    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["photos"] >= 3 * len(PRODUCT_GROUPS)
    assert (tmp_path / "hm" / "articles.csv").is_file()


def test_compare_command_writes_png(smoke_runs, tmp_path):
    out = tmp_path / "compare.png"

    code = main(["compare", *map(str, smoke_runs.values()), "--out", str(out)])

    assert code == 0
    assert out.read_bytes()[:4] == b"\x89PNG"
