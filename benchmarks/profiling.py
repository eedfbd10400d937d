"""Sample server processes with py-spy while a load level runs, to show where their CPU time goes.

py-spy (0.4) attaches to a running Python process by pid and records its stacks at
a fixed rate. The raw output has one line per distinct stack, "outer;...;leaf N",
where each frame reads "function (file.py:line)" and N is the sample count. The summary counts each stack's samples under its leaf
frame, the function that was running (self time), and under every frame on the
stack (inclusive time).
"""

import logging
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

logger = logging.getLogger(__name__)

SAMPLE_RATE_HZ = 100
TOP_FRAMES = 10


def py_spy_path() -> str | None:
    """Return the py-spy executable next to this Python or on PATH, or None when it is not installed."""
    beside_python = Path(sys.executable).with_name("py-spy")
    if beside_python.is_file():
        return str(beside_python)
    return shutil.which("py-spy")


def _frame_name(frame: str) -> str:
    """Shorten "function (path/to/module.py:123)" to "function (module.py)"."""
    function, _, location = frame.partition(" (")
    if not location:
        return frame
    file_name = Path(location.rstrip(")").rsplit(":", 1)[0]).name
    return f"{function} ({file_name})"


def summarize_raw_profile(text: str, top: int = TOP_FRAMES) -> dict:
    """Summarize py-spy raw output: total samples and the top frames by self and by inclusive share."""
    self_samples: Counter = Counter()
    inclusive_samples: Counter = Counter()
    total = 0
    for line in text.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame_name(frame) for frame in stack.split(";")]
        total += count
        self_samples[frames[-1]] += count
        for frame in set(frames):
            inclusive_samples[frame] += count

    def share(counter: Counter) -> list[dict]:
        return [{"frame": frame, "percent": 100 * count / total} for frame, count in counter.most_common(top)]

    return {
        "samples": total,
        "top_self": share(self_samples) if total else [],
        "top_inclusive": share(inclusive_samples) if total else [],
    }


def profile_during(targets: dict[str, int], duration_s: float, out_dir: Path, run_load: Callable[[], object]) -> dict:
    """Sample each target process (name -> pid) with py-spy while run_load() runs; returns the summaries.

    Returns an empty dict when py-spy is not installed, because profiles explain the
    numbers but are not needed to measure them.
    """
    executable = py_spy_path()
    if executable is None:
        logger.warning("py-spy not found; the run has no CPU profiles (install py-spy to get them)")
        run_load()
        return {}

    out_dir.mkdir(parents=True, exist_ok=True)
    recorders = {}
    for name, pid in targets.items():
        output = out_dir / f"{name}.txt"
        command = [
            executable, "record",
            "--pid", str(pid),
            "--duration", str(max(1, int(duration_s))),
            "--rate", str(SAMPLE_RATE_HZ),
            "--format", "raw",
            "--nonblocking",
            "--output", str(output),
        ]  # fmt: skip
        recorders[name] = (subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True), output)

    run_load()

    profiles = {}
    for name, (process, output) in recorders.items():
        try:
            _, stderr = process.communicate(timeout=duration_s + 30)
        except subprocess.TimeoutExpired:
            process.kill()
            _, stderr = process.communicate()
        if process.returncode != 0 or not output.is_file():
            logger.warning("py-spy on %s (pid %d) failed: %s", name, targets[name], stderr.strip()[-500:])
            continue
        profiles[name] = {"pid": targets[name], "file": str(output), **summarize_raw_profile(output.read_text())}
    return profiles
