"""Write a run's results as JSON, a Markdown report and PNG plots into one folder."""

import json
import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # No display on servers and in CI; must be set before pyplot is imported.
import matplotlib.pyplot as plt  # noqa: E402

from benchmarks.targets import compute_ratios, evaluate_targets  # noqa: E402

logger = logging.getLogger(__name__)

RESULTS_JSON = "results.json"
REPORT_MD = "report.md"
THROUGHPUT_PLOT = "throughput_vs_concurrency.png"
LATENCY_PLOT = "latency_vs_throughput.png"

MISSING = "n/a"


def fmt(value: float | int | None, digits: int = 1) -> str:
    """Format a number with fixed decimals, or MISSING for None."""
    if value is None:
        return MISSING
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}"


def table(headers: list[str], rows: list[list[str]]) -> str:
    """Render a GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def format_errors(errors: dict[str, int]) -> str:
    """Render an error count table such as {"HTTP 503": 2} as "HTTP 503: 2", or "0"."""
    if not errors:
        return "0"
    return ", ".join(f"{key}: {count}" for key, count in sorted(errors.items()))


def _target_result(row: dict) -> str:
    if row["met"] is None:
        return "not measured"
    if row["met"]:
        return "met"
    return f"missed by {row['shortfall_percent']:.1f}%"


def targets_section(target_rows: list[dict]) -> str:
    """Render the targets table: measured value, limit and the shortfall of a missed target."""
    rows = [
        [
            row["description"],
            f"{fmt(row['value'], 2)} {row['unit']}" if row["value"] is not None else MISSING,
            f"{row['comparison']} {row['threshold']:g} {row['unit']}",
            _target_result(row),
        ]
        for row in target_rows
    ]
    return "## Targets\n\n" + table(["quantity", "measured", "target", "result"], rows)


def ratios_section(ratios: dict[str, float | None], target_keys: set[str]) -> str:
    """Render the informational ratios that are not targets."""
    rows = [[key, fmt(value, 2)] for key, value in ratios.items() if key not in target_keys]
    return "## Other ratios\n\n" + table(["ratio", "value"], rows)


def inprocess_section(inprocess: dict) -> str:
    """Render one row per engine and batch size of the in-process runs."""
    rows = []
    for engine in inprocess.values():
        for batch in engine["batches"]:
            latency = batch["latency"]
            rows.append(
                [
                    engine["name"],
                    str(batch["batch_size"]),
                    fmt(batch["images_per_s"]),
                    fmt(latency["p50_ms"]),
                    fmt(latency["p99_ms"]),
                ]
            )
    headers = ["engine", "batch size", "images/s", "p50 ms per batch", "p99 ms per batch"]
    return "## In-process inference on preprocessed tensors\n\n" + table(headers, rows)


def _server_columns(level: dict) -> list[str]:
    server = level.get("server") or {}
    return [
        fmt(server.get("queue_ms")),
        fmt(server.get("preprocess_ms")),
        fmt(server.get("inference_ms")),
        fmt(server.get("mean_batch_size"), 2),
    ]


# Headers of _server_columns: TorchServe's queue time per request, then the handler's times per batch.
SERVER_HEADERS = ["server queue ms/request", "server preprocess ms/batch", "server inference ms/batch", "mean batch"]


def closed_loop_section(served: dict) -> str:
    """Render every closed-loop level: throughput, latency percentiles, errors and the server-side split."""
    rows = []
    for name, series in served.items():
        for level in series["levels"]:
            if level["mode"] != "closed":
                continue
            latency = level["latency"]
            rows.append(
                [
                    name,
                    str(level["concurrency"]),
                    fmt(level["throughput_rps"]),
                    fmt(latency["p50_ms"]),
                    fmt(latency["p90_ms"]),
                    fmt(latency["p95_ms"]),
                    fmt(latency["p99_ms"]),
                    format_errors(level["errors"]),
                    *_server_columns(level),
                ]
            )
    headers = [
        "series",
        "concurrency",
        "req/s",
        "p50 ms",
        "p90 ms",
        "p95 ms",
        "p99 ms",
        "errors",
        *SERVER_HEADERS,
    ]
    return "## Served, closed loop\n\n" + table(headers, rows)


def open_loop_section(served: dict) -> str:
    """Render every open-loop level: target and achieved rate, latency percentiles, errors, dropped sends."""
    rows = []
    for name, series in served.items():
        for level in series["levels"]:
            if level["mode"] != "open":
                continue
            latency = level["latency"]
            rows.append(
                [
                    name,
                    fmt(level["target_rate"]),
                    fmt(level["throughput_rps"]),
                    fmt(latency["p50_ms"]),
                    fmt(latency["p90_ms"]),
                    fmt(latency["p99_ms"]),
                    format_errors(level["errors"]),
                    str(level["dropped"]),
                ]
            )
    headers = ["series", "target req/s", "achieved req/s", "p50 ms", "p90 ms", "p99 ms", "errors", "dropped"]
    return "## Served, open loop (latency from the scheduled send time)\n\n" + table(headers, rows)


# Column order of the CPU table: from the client through the stack to the model.
CPU_ROLES = ("load generator", "facade", "TorchServe frontend (JVM)", "TorchServe model worker")


def cpu_section(served: dict) -> str:
    """Render the CPU ms per request of each process role for every closed-loop level that measured it."""
    rows = []
    for name, series in served.items():
        for level in series["levels"]:
            cpu = level.get("cpu_ms_per_request")
            if level["mode"] != "closed" or not cpu:
                continue
            # A direct TorchServe series does not pass the facade, so its idle facade gets a blank cell.
            skipped = {"facade"} if series.get("target") == "torchserve" else set()
            columns = ["" if role in skipped else fmt(cpu.get(role), 2) for role in CPU_ROLES]
            rows.append([name, str(level["concurrency"]), fmt(level["throughput_rps"]), *columns, fmt(sum(cpu.values()), 2)])
    headers = ["series", "concurrency", "req/s", *(f"{role} ms" for role in CPU_ROLES), "total ms"]
    title = "## CPU time per request (user + system, psutil, same windows as the closed-loop table)"
    return title + "\n\n" + table(headers, rows)


def handler_sweep_section(sweep: list[dict]) -> str:
    """Render the handler settings sweep: one row per configuration and concurrency."""
    rows = []
    for entry in sweep:
        config = entry["config"]
        for level in entry["levels"]:
            latency = level["latency"]
            rows.append(
                [
                    str(config["batch_size"]),
                    str(config["max_batch_delay_ms"]),
                    f"{config['workers']}x{config['threads']}",
                    str(level["concurrency"]),
                    fmt(level["throughput_rps"]),
                    fmt(latency["p50_ms"]),
                    fmt(latency["p99_ms"]),
                    format_errors(level["errors"]),
                    *_server_columns(level),
                ]
            )
    headers = [
        "batch size",
        "max batch delay ms",
        "workers x threads",
        "concurrency",
        "req/s",
        "p50 ms",
        "p99 ms",
        "errors",
        *SERVER_HEADERS,
    ]
    return "## Handler settings sweep (TorchServe, this project's handler)\n\n" + table(headers, rows)


def accuracy_section(accuracy: dict) -> str:
    """Render top-1 accuracy and macro-F1 of each model variant on the validation split."""
    rows = [
        [name, str(values["images"]), fmt(values["top1"] * 100, 2), fmt(values["macro_f1"], 4)]
        for name, values in accuracy.items()
        if isinstance(values, dict) and "top1" in values
    ]
    return "## Accuracy on the validation split\n\n" + table(["model", "images", "top-1 %", "macro-F1"], rows)


def memory_section(memory: dict) -> str:
    """Render the resident memory of every process in the stack and the totals."""
    megabyte = 1e6
    rows = [
        [
            str(process["pid"]),
            process["role"] if "role" in process else process["name"],
            fmt(process["rss_bytes"] / megabyte, 0),
            fmt(process["pss_bytes"] / megabyte, 0) if process["pss_bytes"] is not None else MISSING,
        ]
        for process in memory["processes"]
    ]
    pss_total = memory["pss_total_bytes"]
    rows.append(
        [
            "total",
            "",
            fmt(memory["rss_total_bytes"] / megabyte, 0),
            fmt(pss_total / megabyte, 0) if pss_total is not None else MISSING,
        ]
    )
    return "## Resident memory of the stack\n\n" + table(["pid", "process", "RSS MB", "PSS MB"], rows)


def profiles_section(profiles: dict, top: int = 5) -> str:
    """Render the top self-time frames of each process sampled with py-spy during a profiled level."""
    rows = []
    for level_name, processes in profiles.items():
        for process_name, profile in processes.items():
            frames = "<br>".join(f"{row['percent']:.0f}% {row['frame']}" for row in profile["top_self"][:top])
            rows.append([level_name, process_name, str(profile["samples"]), frames])
    headers = ["level", "process", "samples", f"top {top} frames by self time"]
    return "## CPU profiles (py-spy, during extra levels that are not in the tables above)\n\n" + table(headers, rows)


def header_section(results: dict) -> str:
    """Render the title and the facts needed to read the numbers: machine, sharing, inputs, model."""
    machine = results.get("machine", {})
    inputs = results.get("inputs", {})
    model = results.get("model", {})
    lines = [
        "# Benchmark results",
        "",
        f"- Run: {results.get('created', MISSING)}, profile `{results.get('profile', MISSING)}`.",
        f"- Machine: {machine.get('cpu_model', MISSING)}, {machine.get('cpu_count', MISSING)} logical CPUs, "
        f"{fmt(machine.get('memory_gb'))} GB RAM, load average (1, 5, 15 min) {machine.get('load_average', MISSING)} "
        f"before the run and {machine.get('load_average_after', MISSING)} after it.",
        "- The load generator, the servers and any other work on the machine share these CPUs, "
        "so served numbers include the client's CPU cost.",
        f"- Inputs: {inputs.get('source', MISSING)} data ({inputs.get('stored_photos', MISSING)} photos at stored "
        f"resolution, {inputs.get('fullsize_photos', MISSING)} full-size photos, {inputs.get('text_rows', MISSING)} text rows).",
        f"- Model: {model.get('arch', MISSING)} at {model.get('image_size', MISSING)} px from `{model.get('checkpoint', MISSING)}`"
        f"{'' if model.get('trained', True) else ' (randomly initialised: throughput only, accuracy is meaningless)'}.",
    ]
    notes = results.get("notes") or []
    lines += [f"- Note: {note}" for note in notes]
    errors = results.get("errors") or []
    lines += [f"- **Step failed**: {error['step']}: {error['error']}" for error in errors]
    return "\n".join(lines)


def render_markdown(results: dict) -> str:
    """Render the whole report; sections whose measurement was skipped are left out."""
    target_rows = results.get("targets") or evaluate_targets(results.get("ratios") or compute_ratios(results))
    ratios = results.get("ratios") or compute_ratios(results)
    sections = [header_section(results), targets_section(target_rows), ratios_section(ratios, {row["key"] for row in target_rows})]

    if results.get("inprocess"):
        sections.append(inprocess_section(results["inprocess"]))
    served = results.get("served") or {}
    if any(level["mode"] == "closed" for series in served.values() for level in series["levels"]):
        sections.append(closed_loop_section(served))
    if any(level.get("cpu_ms_per_request") for series in served.values() for level in series["levels"]):
        sections.append(cpu_section(served))
    if any(level["mode"] == "open" for series in served.values() for level in series["levels"]):
        sections.append(open_loop_section(served))
    if results.get("handler_sweep"):
        sections.append(handler_sweep_section(results["handler_sweep"]))
    if results.get("accuracy"):
        sections.append(accuracy_section(results["accuracy"]))
    if results.get("memory"):
        sections.append(memory_section(results["memory"]))
    if results.get("profiles"):
        sections.append(profiles_section(results["profiles"]))
    return "\n\n".join(sections) + "\n"


def _image_series(results: dict) -> dict:
    """Return the served series that send photos; the text-only price series has its own scale and stays in the tables."""
    return {name: series for name, series in (results.get("served") or {}).items() if series.get("input") != "text"}


def plot_throughput(results: dict, path: Path) -> None:
    """Plot requests/s against concurrency for every closed-loop photo series, with raw ORT as a reference line."""
    figure, axes = plt.subplots(figsize=(8, 5))
    ticks: set[int] = set()
    for name, series in _image_series(results).items():
        levels = [level for level in series["levels"] if level["mode"] == "closed"]
        if len(levels) < 2:
            continue
        concurrency = [level["concurrency"] for level in levels]
        ticks.update(concurrency)
        axes.plot(concurrency, [level["throughput_rps"] for level in levels], marker="o", label=name)

    raw = (results.get("inprocess") or {}).get("ort_fp32")
    if raw:
        axes.axhline(raw["best_images_per_s"], color="black", linestyle="--", label=f"raw ORT, batch {raw['best_batch_size']}")

    axes.set_xscale("log", base=2)
    if ticks:
        axes.set_xticks(sorted(ticks), labels=[str(tick) for tick in sorted(ticks)])
    axes.set_ylim(bottom=0)
    axes.set_xlabel("concurrency (requests in flight)")
    axes.set_ylabel("throughput (requests/s; images/s for raw ORT)")
    axes.set_title("Throughput vs concurrency")
    axes.grid(True, alpha=0.3)
    if axes.get_legend_handles_labels()[0]:
        axes.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_latency(results: dict, path: Path) -> None:
    """Plot p50 and p99 latency against achieved throughput, one colour per closed-loop photo series."""
    figure, axes = plt.subplots(figsize=(11, 5))
    for name, series in _image_series(results).items():
        levels = [level for level in series["levels"] if level["mode"] == "closed" and level["latency"]["count"] > 0]
        if len(levels) < 2:
            continue
        throughput = [level["throughput_rps"] for level in levels]
        (line,) = axes.plot(throughput, [level["latency"]["p50_ms"] for level in levels], marker="o", label=f"{name} p50")
        axes.plot(
            throughput,
            [level["latency"]["p99_ms"] for level in levels],
            marker="x",
            linestyle="--",
            color=line.get_color(),
            label=f"{name} p99",
        )

    axes.set_yscale("log")
    axes.set_xlabel("throughput (requests/s)")
    axes.set_ylabel("latency (ms)")
    axes.set_title("Latency percentiles vs throughput (closed loop)")
    axes.grid(True, alpha=0.3)
    if axes.get_legend_handles_labels()[0]:
        # Outside the axes, because the curves fill the whole plot area.
        axes.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def write_report(results: dict, out_dir: Path) -> dict[str, Path]:
    """Write results.json, report.md and the two plots into out_dir; returns the written paths.

    The ratios and target rows are computed here when the results do not have them yet,
    so the JSON and the Markdown always agree.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    results.setdefault("ratios", compute_ratios(results))
    results.setdefault("targets", evaluate_targets(results["ratios"]))

    paths = {
        "json": out_dir / RESULTS_JSON,
        "markdown": out_dir / REPORT_MD,
        "throughput_plot": out_dir / THROUGHPUT_PLOT,
        "latency_plot": out_dir / LATENCY_PLOT,
    }
    paths["json"].write_text(json.dumps(results, indent=2, sort_keys=False) + "\n")
    paths["markdown"].write_text(render_markdown(results))
    plot_throughput(results, paths["throughput_plot"])
    plot_latency(results, paths["latency_plot"])
    logger.info("wrote report to %s", out_dir)
    return paths
