"""Tests of `python -m export`: help text and the classifier and int8 commands end to end."""

import subprocess
import sys
from pathlib import Path

from export.__main__ import main
from export.manifest import read_manifest

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_help_lists_commands():
    completed = subprocess.run(
        [sys.executable, "-m", "export", "--help"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )

    assert completed.returncode == 0, completed.stderr
    for command in ("classifier", "int8", "price"):
        assert command in completed.stdout


def test_classifier_and_int8_commands(tmp_path: Path, checkpoint_path: Path, sample_root: Path, capsys):
    fp32_dir = tmp_path / "fp32"
    int8_dir = tmp_path / "int8"

    exit_code = main(["classifier", "--checkpoint", str(checkpoint_path.parent), "--out", str(fp32_dir)])
    assert exit_code == 0
    assert capsys.readouterr().out.strip() == str(fp32_dir / "manifest.json")

    exit_code = main(["int8", "--model-dir", str(fp32_dir), "--out", str(int8_dir), "--data-root", str(sample_root), "--count", "8"])
    assert exit_code == 0
    assert capsys.readouterr().out.strip() == str(int8_dir / "manifest.json")

    assert read_manifest(int8_dir)["quantization"]["source_onnx_sha256"] == read_manifest(fp32_dir)["onnx_sha256"]
