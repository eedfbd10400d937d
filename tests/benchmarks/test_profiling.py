"""Tests of the py-spy profile summary, on known raw text and on a real sampled process."""

import subprocess
import sys

import pytest

from benchmarks.profiling import profile_during, py_spy_path, summarize_raw_profile

RAW_PROFILE = """\
<module> (worker.py:8);handle (handler_common.py:90);predict (image_handler.py:40) 60
<module> (worker.py:8);handle (handler_common.py:90);predict (image_handler.py:41) 20
<module> (worker.py:8);handle (handler_common.py:75);decode (image_decoding.py:12) 20
"""

BUSY_SCRIPT = """
def spin_forever():
    count = 0
    while True:
        count += 1

spin_forever()
"""


def test_raw_profile_self_and_inclusive_shares():
    summary = summarize_raw_profile(RAW_PROFILE)

    assert summary["samples"] == 100
    assert summary["top_self"][0] == {"frame": "predict (image_handler.py)", "percent": 80.0}
    assert summary["top_self"][1] == {"frame": "decode (image_decoding.py)", "percent": 20.0}
    inclusive = {row["frame"]: row["percent"] for row in summary["top_inclusive"]}
    assert inclusive["handle (handler_common.py)"] == 100.0
    assert inclusive["<module> (worker.py)"] == 100.0


def test_raw_profile_skips_other_lines():
    summary = summarize_raw_profile("py-spy> Sampling process\n\n")

    assert summary == {"samples": 0, "top_self": [], "top_inclusive": []}


@pytest.mark.skipif(py_spy_path() is None, reason="py-spy is not installed")
def test_profile_during_samples_real_process(tmp_path):
    busy = subprocess.Popen([sys.executable, "-c", BUSY_SCRIPT])
    try:
        profiles = profile_during({"busy": busy.pid}, 1.0, tmp_path, lambda: None)
    finally:
        busy.kill()
        busy.wait()

    assert profiles["busy"]["pid"] == busy.pid
    assert profiles["busy"]["samples"] > 0
    assert profiles["busy"]["top_self"][0]["frame"] == "spin_forever (<string>)"
