"""One command that proves the GPU path and measures it within a time budget.

``python -m server.acceptance --out DIR --budget-s SECONDS`` runs, one step after another, each in its
own process with a deadline:

1. **weights**: x4plus verified (converted first from ``--weights-from BUNDLE`` when missing);
2. **gpu_tests**: ``tests/test_gpu.py`` with pytest (on a machine without CUDA they report skipped);
3. **benchmark**: ``tests/benchmarks/bench_throughput.py``: the reference (Real-ESRGAN's own way of
   running x4plus, one request at a time) against this server under loopback load, 512² → 2K and
   1024² → 2K on CUDA (one 64² → 256 case on the CPU), each alone and under load; from it also one
   request alone with its per-stage timings (``X-Enhance-Parameters``) and peak device memory;
4. **bf16** (CUDA only): the server again in bfloat16 (``ENHANCE_PRECISION=bf16``) for the 512² case
   on a GPU that has it, when the budget has room; the eager benchmark ran ``auto`` (float16);
5. **compile**: the server again with ``torch.compile`` for the 512² case (one graph: its 512 px
   tile, batches of one), only when the budget has room left for it (the report says whether it ran
   and why not; not finishing within the budget is reported, not a failure).

The report then sets float16 against bfloat16 and compiled against eager beside the reference
(:func:`precision_verdict`) and says which precision ``auto`` should pick on this GPU (the faster
of the two; float16 when bfloat16 was not measured) and whether compilation pays. The CPU's
precisions are measured by ``tests/benchmarks/bench_cpu.py`` instead.

It writes ``DIR/report.json`` and ``DIR/report.md`` (and each step's raw output) and stops by itself
at the budget: a running step is ended (the benchmark keeps and writes what it measured) and the
report is written with what was measured. The tests and the benchmark are not part of the installed
package: they are read from ``--tests-dir`` (default: ``./tests``, then the source checkout's
``tests/``); an offline bundle carries them in ``acceptance/tests``.

Exit status: 0 when every step that ran passed, 1 otherwise, 2 on a usage error.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib.util
import json
import os
import platform
import shlex
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import weights

WEIGHTS_NAME = "realesrgan-x4plus"
BENCH_RELATIVE = Path("benchmarks") / "bench_throughput.py"
GPU_TESTS_RELATIVE = Path("test_gpu.py")
# Seconds kept back at the end for stopping a step and writing the report.
RESERVE_S = 8.0
# The benchmark gets this long to save its partial results after SIGTERM, before it is killed.
STOP_GRACE_S = 45.0
# Compilation runs only when at least this much budget is left after the eager benchmark.
COMPILE_MIN_S = {"cuda": 150.0, "cpu": 600.0}
COMPILE_MODE = "default"  # max-autotune took about 5 minutes on an H100 (DESIGN.md): too long for a slot
# The bfloat16 run (CUDA only) needs this much budget left after the eager benchmark.
BF16_MIN_S = 120.0
# Steps whose not finishing within the budget is reported but does not fail the run.
OPTIONAL_STEPS = frozenset({"compile", "bf16"})
NOT_READY_MARK = "was not ready after"


@dataclass(frozen=True)
class Plan:
    """The sizes of the steps on one kind of device."""

    device: str
    bench_args: tuple[str, ...]
    compile_case: str
    compile_tile_side: int
    gpu_tests_share: float  # most of the remaining budget the GPU tests may take
    gpu_tests_max_s: float


CUDA_PLAN = Plan(
    device="cuda",
    bench_args=(
        "--device",
        "cuda",
        "--cases",
        "512:2k,1024:2k",
        "--warmup",
        "2",
        "--alone",
        "5",
        "--concurrency",
        "8",
        "--load-warmup",
        "8",
    ),
    compile_case="512:2k",
    compile_tile_side=512,
    gpu_tests_share=0.4,
    gpu_tests_max_s=150.0,
)
CPU_PLAN = Plan(
    device="cpu",
    bench_args=(
        "--device",
        "cpu",
        "--cases",
        "32:auto",
        "--target-long-side",
        "128",
        "--warmup",
        "1",
        "--alone",
        "1",
        "--concurrency",
        "2",
        "--load-warmup",
        "0",
        "--load-requests",
        "2",
    ),
    compile_case="32:auto",
    compile_tile_side=32,
    gpu_tests_share=0.4,
    gpu_tests_max_s=60.0,
)


def process_age_s() -> float:
    """Seconds since this process started (its imports count against the budget); 0 when unknown."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return max(0.0, uptime - ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return 0.0


class Clock:
    """The budget, counted from the start of this process: seconds left before the deadline (less the
    reserve)."""

    def __init__(self, budget_s: float) -> None:
        self.started = time.monotonic() - process_age_s()
        self.budget_s = budget_s

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def left(self) -> float:
        return self.budget_s - RESERVE_S - self.elapsed


def log(message: str) -> None:
    print(f"[acceptance {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run_step(command: list[str], *, cwd: Path, log_path: Path, timeout_s: float, env: dict[str, str]) -> dict[str, Any]:
    """Run ``command`` in its own process group, output to ``log_path``; past ``timeout_s`` send SIGTERM
    (the benchmark then writes what it measured), wait ``STOP_GRACE_S`` (within the timeout's reserve),
    then kill the group. Returns the exit code, the seconds it took and whether it was stopped."""
    started = time.monotonic()
    with log_path.open("wb") as output:
        process = subprocess.Popen(
            command, cwd=cwd, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
        stopped = False
        try:
            code = process.wait(timeout=max(timeout_s, 1.0))
        except subprocess.TimeoutExpired:
            stopped = True
            log(f"budget: stopping `{Path(command[-1]).name if command else ''}` (pid {process.pid})")
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                code = process.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                code = process.wait()
    return {
        "exit_code": code,
        "seconds": round(time.monotonic() - started, 1),
        "stopped_by_budget": stopped,
        "command": shlex.join(command),
        "log": str(log_path),
    }


def find_tests_dir(given: Path | None) -> Path:
    """``--tests-dir``, else ``./tests``, else ``./acceptance/tests`` (a bundle), else the checkout's ``tests``."""
    candidates: list[Path] = (
        [given]
        if given is not None
        else [
            Path.cwd() / "tests",
            Path.cwd() / "acceptance" / "tests",
            Path(__file__).resolve().parent.parent / "tests",
        ]
    )
    for candidate in candidates:
        if (candidate / BENCH_RELATIVE).is_file() and (candidate / GPU_TESTS_RELATIVE).is_file():
            return candidate.resolve()
    tried = ", ".join(str(c) for c in candidates)
    raise SystemExit(
        f"error: no tests folder with {GPU_TESTS_RELATIVE} and {BENCH_RELATIVE} (tried {tried}); "
        "give --tests-dir (an offline bundle has acceptance/tests)"
    )


def step_weights(weights_dir: Path, source: Path | None) -> dict[str, Any]:
    """x4plus present and valid, converted from ``source`` (a bundle) when missing."""
    started = time.monotonic()
    try:
        weights.verify_weights(weights_dir, [WEIGHTS_NAME])
        action = "verified"
    except weights.WeightsError:
        if source is not None:
            weights.pull_from_sources(weights_dir, source, [WEIGHTS_NAME])
            action = f"converted from {source}"
        else:
            weights.pull_weights(weights_dir, [WEIGHTS_NAME])
            action = "pulled"
    seconds = round(time.monotonic() - started, 1)
    return {"status": "passed", "action": action, "dir": str(weights_dir), "seconds": seconds}


def read_junit(path: Path) -> dict[str, Any]:
    """Counts and failing test names from pytest's JUnit XML (absent: nothing known)."""
    if not path.is_file():
        return {}
    root = ElementTree.parse(path).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    if suite is None:
        return {}
    cases = []
    for case in suite.iter("testcase"):
        outcome = "passed"
        for child in case:
            if child.tag in {"failure", "error", "skipped"}:
                outcome = {"failure": "failed", "error": "error", "skipped": "skipped"}[child.tag]
        cases.append({"name": case.get("name"), "outcome": outcome, "seconds": float(case.get("time") or 0)})
    counts = {key: sum(c["outcome"] == key for c in cases) for key in ("passed", "failed", "error", "skipped")}
    return {"counts": counts, "tests": cases}


def step_gpu_tests(tests_dir: Path, out: Path, timeout_s: float, env: dict[str, str]) -> dict[str, Any]:
    junit = out / "gpu-tests.xml"
    command = [
        sys.executable,
        "-m",
        "pytest",
        str(tests_dir / GPU_TESTS_RELATIVE),
        "-q",
        "-rA",
        "-p",
        "no:cacheprovider",
        f"--junitxml={junit}",
        "-o",
        "markers=gpu: needs CUDA",
    ]
    result = run_step(command, cwd=tests_dir.parent, log_path=out / "gpu-tests.log", timeout_s=timeout_s, env=env)
    result.update(read_junit(junit))
    counts = result.get("counts", {})
    if result["stopped_by_budget"]:
        result["status"] = "stopped"
    elif counts and counts["failed"] == 0 and counts["error"] == 0 and counts["passed"] > 0:
        result["status"] = "passed"
    elif counts and counts["failed"] == 0 and counts["error"] == 0 and counts["skipped"] == sum(counts.values()):
        result["status"] = "skipped (no CUDA)"
    else:
        result["status"] = "failed"
    return result


def load_bench(tests_dir: Path) -> ModuleType:
    """The benchmark script as a module (for its table and case parser)."""
    spec = importlib.util.spec_from_file_location("bench_throughput", tests_dir / BENCH_RELATIVE)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load {tests_dir / BENCH_RELATIVE}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def step_benchmark(
    tests_dir: Path, out: Path, name: str, args: Sequence[str], timeout_s: float, env: dict[str, str]
) -> dict[str, Any]:
    json_path = out / f"{name}.json"
    command = [
        sys.executable,
        str(tests_dir / BENCH_RELATIVE),
        *args,
        "--json",
        str(json_path),
        "--server-log",
        str(out / f"{name}.server.log"),
    ]
    result = run_step(command, cwd=tests_dir.parent, log_path=out / f"{name}.log", timeout_s=timeout_s, env=env)
    data = json.loads(json_path.read_text()) if json_path.is_file() else None
    return classify_benchmark(result, data)


def classify_benchmark(result: dict[str, Any], data: dict[str, Any] | None) -> dict[str, Any]:
    """Add the benchmark's results (its JSON, ``None`` when it wrote none), the cases measured on both
    sides, and the status to ``result`` (``run_step``'s): passed (exit 0), partial (something measured),
    stopped (by the budget, or the server not ready in time), else failed."""
    cases = (data or {}).get("cases", {})
    complete = [
        n
        for n, c in cases.items()
        if c.get("reference") and c.get("ours") and "error" not in (c.get("reference") or {})
    ]
    result["results"] = data
    result["cases_measured"] = complete
    measured = bool(complete or any(c.get("ours") for c in cases.values()))
    not_ready = NOT_READY_MARK in str(((data or {}).get("server") or {}).get("error") or "")
    if data is not None and result["exit_code"] == 0:
        result["status"] = "passed"
    elif measured:
        result["status"] = "partial"  # stopped by the budget, or one side failed: the rest is kept
    else:
        result["status"] = "stopped" if result["stopped_by_budget"] or not_ready else "failed"
    return result


def single_request(bench: dict[str, Any] | None) -> dict[str, Any] | None:
    """The first measured case's request alone: its latency and the server's per-stage timings."""
    for case_name, case in ((bench or {}).get("cases") or {}).items():
        alone = (case.get("ours") or {}).get("alone") or {}
        example = alone.get("example")
        if example:
            parameters = example.get("parameters") or {}
            return {
                "case": case_name,
                "latency_s": example.get("latency_s"),
                "timings_s": parameters.get("timings"),
                "network_input": parameters.get("network_input"),
                "tile": parameters.get("tile"),
                "tiles": parameters.get("tiles"),
                "device": parameters.get("device"),
                "dtype": parameters.get("dtype"),
                "p50_timings_s": {k: v.get("p50") for k, v in (alone.get("server_timings_s") or {}).items()},
            }
    return None


def peak_memory(bench: dict[str, Any] | None) -> dict[str, Any]:
    """Peak device memory: the reference's per case, and the server's (after each load phase)."""
    peaks: dict[str, Any] = {}
    for case_name, case in ((bench or {}).get("cases") or {}).items():
        reference = case.get("reference") or {}
        after = (((case.get("ours") or {}).get("load") or {}).get("metrics_raw") or {}).get("after") or {}
        peaks[case_name] = {
            "reference_peak_allocated_bytes": reference.get("peak_allocated_bytes"),
            "reference_peak_reserved_bytes": reference.get("peak_reserved_bytes"),
            "server_peak_reserved_bytes": after.get("enhance_gpu_peak_memory_bytes"),
            "server_memory_budget_bytes": after.get("enhance_memory_budget_bytes"),
        }
    return peaks


def _case_figures(step: dict[str, Any] | None, case: str) -> dict[str, Any] | None:
    """p50 alone (s) and requests/s under load of ``case`` in a benchmark step's results, or None."""
    ours = ((((step or {}).get("results") or {}).get("cases") or {}).get(case) or {}).get("ours") or {}
    try:
        return {"p50_s": ours["alone"]["latency_s"]["p50"], "rps": ours["load"]["rps"]}
    except (KeyError, TypeError):
        return None


def precision_verdict(steps: dict[str, Any], case: str) -> dict[str, Any]:
    """float16 (the eager benchmark: ``auto`` on CUDA) against bfloat16 (the bf16 step) and compiled
    against eager (the compile step, float16) on ``case``, beside the reference; ``auto_should_pick``:
    the faster precision alone (p50), float16 when bfloat16 was not measured; ``compile_helps``: whether
    the compiled server's p50 beat eager float16's (None when either is missing)."""
    bench = ((steps.get("benchmark") or {}).get("results") or {}).get("cases") or {}
    reference = (bench.get(case) or {}).get("reference") or {}
    rows: dict[str, dict[str, Any] | None] = {
        "reference": {"p50_s": (reference.get("request_s") or {}).get("p50"), "rps": reference.get("rps")}
        if reference
        else None,
        "fp16 eager": _case_figures(steps.get("benchmark"), case),
        "bf16 eager": _case_figures(steps.get("bf16"), case),
        "fp16 compiled": _case_figures(steps.get("compile"), case),
    }
    fp16, bf16, compiled = rows["fp16 eager"], rows["bf16 eager"], rows["fp16 compiled"]
    if fp16 is not None and bf16 is not None and bf16["p50_s"] < fp16["p50_s"]:
        pick, why = "bf16", f"bfloat16 p50 {bf16['p50_s']:.3f} s < float16 {fp16['p50_s']:.3f} s"
    elif fp16 is not None and bf16 is not None:
        pick, why = "fp16", f"float16 p50 {fp16['p50_s']:.3f} s ≤ bfloat16 {bf16['p50_s']:.3f} s"
    else:
        pick, why = "fp16", "bfloat16 not measured: float16 stays (auto's choice on CUDA)"
    helps = None if fp16 is None or compiled is None else compiled["p50_s"] < fp16["p50_s"]
    return {"case": case, "rows": rows, "auto_should_pick": pick, "why": why, "compile_helps": helps}


def environment() -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
    }
    if torch.cuda.is_available():
        info["device_name"] = torch.cuda.get_device_name(0)
        info["device_memory_bytes"] = torch.cuda.get_device_properties(0).total_memory
        info["cuda_bf16"] = torch.cuda.get_device_capability(0)[0] >= 8  # Ampere and later
    return info


def _fmt(value: Any, digits: int) -> str:
    return f"{value:.{digits}f}" if isinstance(value, int | float) else "n/a"


def _gib(value: Any) -> str:
    return "n/a" if not isinstance(value, int | float) else f"{value / 1024**3:.2f} GiB"


def markdown(report: dict[str, Any], bench_module: ModuleType | None) -> str:
    """The readable report."""
    env = report["environment"]
    lines = [
        "# GPU acceptance report",
        "",
        f"- command: `{report['command']}`",
        f"- {report['finished_at']}: {report['elapsed_s']} s of a {report['budget_s']:g} s budget"
        + (" (stopped at the budget)" if report["stopped_by_budget"] else ""),
        f"- device: {env.get('device_name', 'CPU')} ({report['device']}); torch {env['torch']} "
        f"(CUDA {env['torch_cuda']}); Python {env['python']}",
        f"- result: **{report['result']}**",
        "",
        "## Steps",
        "",
        "| step | status | seconds | detail |",
        "|---|---|---|---|",
    ]
    for name, step in report["steps"].items():
        detail = step.get("action") or step.get("reason") or ""
        if name == "gpu_tests" and step.get("counts"):
            detail = ", ".join(f"{v} {k}" for k, v in step["counts"].items() if v)
        if name.startswith("benchmark") and step.get("cases_measured") is not None:
            detail = f"cases measured: {', '.join(step['cases_measured']) or 'none'}"
        lines.append(f"| {name} | {step.get('status')} | {step.get('seconds', '')} | {detail} |")
    tests = report["steps"].get("gpu_tests", {}).get("tests") or []
    if tests:
        lines += ["", "GPU tests:", ""] + [f"- {t['outcome']}: {t['name']} ({t['seconds']:.1f} s)" for t in tests]
    for name in ("benchmark", "compile"):
        data = (report["steps"].get(name) or {}).get("results")
        if data and bench_module is not None:
            cases = bench_module.parse_cases(",".join(data["settings"]["cases"]))
            title = "Benchmark: reference vs this server" if name == "benchmark" else "Compiled server"
            lines += ["", f"## {title}", "", f"`{data['command']}`", "", bench_module.markdown_table(cases, data)]
            stages = bench_module.stage_table(cases, data)
            if stages:
                lines += ["", "Where the time goes (p50 ms, requests alone):", "", stages]
    verdict = report.get("precision")
    if verdict:
        lines += [
            "",
            f"## Precision and compilation ({verdict['case']})",
            "",
            "| run | p50 alone s | req/s under load |",
            "|---|---|---|",
        ]
        for name, row in verdict["rows"].items():
            if row is None:
                lines.append(f"| {name} | not measured | |")
            else:
                lines.append(f"| {name} | {_fmt(row['p50_s'], 3)} | {_fmt(row['rps'], 2)} |")
        helps = {None: "not measured", True: "yes", False: "no"}[verdict["compile_helps"]]
        lines += [
            "",
            f"`auto` should pick **{verdict['auto_should_pick']}** here ({verdict['why']}); "
            f"compilation helps: {helps}.",
        ]
    compile_step = report["steps"].get("compile", {})
    lines += [
        "",
        f"Compilation ran: **{'yes' if report['compile_ran'] else 'no'}**"
        + (f" ({compile_step.get('reason')})" if compile_step.get("reason") else ""),
    ]
    one = report.get("single_request")
    lines += ["", "## One request alone", ""]
    if one:
        lines.append(
            f"Case {one['case']}: {one['latency_s'] * 1000:.0f} ms end to end; network input {one['network_input']}, "
            f"tile {one['tile']}, {one['tiles']} tiles, {one['device']} {one['dtype']}."
        )
        lines += ["", "| stage | ms |", "|---|---|"]
        lines += [
            f"| {k} | {v * 1000:.1f} |" for k, v in (one.get("timings_s") or {}).items() if isinstance(v, int | float)
        ]
    else:
        lines.append("not measured")
    lines += [
        "",
        "## Peak device memory",
        "",
        "| case | reference allocated | reference reserved | server reserved | server budget |",
        "|---|---|---|---|---|",
    ]
    for case_name, peak in report["peak_memory"].items():
        lines.append(
            f"| {case_name} | {_gib(peak['reference_peak_allocated_bytes'])} | "
            f"{_gib(peak['reference_peak_reserved_bytes'])} | {_gib(peak['server_peak_reserved_bytes'])} | "
            f"{_gib(peak['server_memory_budget_bytes'])} |"
        )
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m server.acceptance",
        description="GPU tests, the throughput benchmark against the reference, one request's stage timings "
        "and peak memory, within a time budget; writes DIR/report.json and DIR/report.md.",
    )
    parser.add_argument("--out", type=Path, required=True, help="report folder (created)")
    parser.add_argument("--budget-s", type=float, default=420.0, help="stop by itself after this many seconds")
    parser.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto", help="auto: CUDA when present")
    parser.add_argument("--tests-dir", type=Path, default=None, help="the tests folder (see the module doc)")
    parser.add_argument("--weights-from", type=Path, default=None, help="an offline bundle to convert weights from")
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment of the benchmarked server (repeatable)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.budget_s < 20:
        print("error: --budget-s must be at least 20", file=sys.stderr)
        return 2
    clock = Clock(args.budget_s)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    tests_dir = find_tests_dir(args.tests_dir)
    env_info = environment()
    device = args.device if args.device != "auto" else ("cuda" if env_info["cuda_available"] else "cpu")
    plan = CUDA_PLAN if device == "cuda" else CPU_PLAN
    weights_dir = Path(os.environ.get("ENHANCE_WEIGHTS_DIR") or weights.default_weights_dir())
    child_env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "ENHANCE_AUTO_PULL_WEIGHTS": "false",
        "ENHANCE_WEIGHTS_DIR": str(weights_dir),
    }
    server_env = [item for pair in args.server_env for item in ("--server-env", pair)]
    command = shlex.join([sys.executable, "-m", "server.acceptance", *(argv if argv is not None else sys.argv[1:])])
    log(f"{device}: budget {args.budget_s:g} s, tests from {tests_dir}, report in {out}")
    steps: dict[str, Any] = {}
    bench_module: ModuleType | None = None

    def write_report() -> dict[str, Any]:
        ran = [s for s in steps.values() if s.get("status") not in (None, "skipped")]
        failed = [
            n
            for n, s in steps.items()
            if s.get("status") == "failed" or (s.get("status") == "stopped" and n not in OPTIONAL_STEPS)
        ]
        partial = [n for n, s in steps.items() if s.get("status") == "partial"]
        bench = (steps.get("benchmark") or {}).get("results")
        report = {
            "command": command,
            "device": device,
            "budget_s": args.budget_s,
            "elapsed_s": round(clock.elapsed, 1),
            "finished_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "stopped_by_budget": any(
                s.get("stopped_by_budget") or s.get("status") == "no time" for s in steps.values()
            ),
            "result": "failed: " + ", ".join(failed)
            if failed
            else ("partial: " + ", ".join(partial) if partial else ("passed" if ran else "nothing ran")),
            "environment": env_info,
            "tests_dir": str(tests_dir),
            "steps": steps,
            "single_request": single_request(bench),
            "peak_memory": peak_memory(bench),
            "compile_ran": (steps.get("compile") or {}).get("status") not in (None, "skipped", "no time"),
            "precision": precision_verdict(steps, plan.compile_case),
        }
        (out / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
        (out / "report.md").write_text(markdown(report, bench_module))
        return report

    try:
        try:
            steps["weights"] = step_weights(weights_dir, args.weights_from)
        except weights.WeightsError as error:
            steps["weights"] = {"status": "failed", "reason": str(error)}
            return _finish(write_report())
        log(f"weights: {steps['weights']['action']}")
        bench_module = load_bench(tests_dir)

        gpu_tests_s = min(clock.left * plan.gpu_tests_share, plan.gpu_tests_max_s)
        steps["gpu_tests"] = step_gpu_tests(tests_dir, out, gpu_tests_s, child_env)
        log(f"gpu tests: {steps['gpu_tests']['status']} ({steps['gpu_tests'].get('counts')})")

        left = clock.left
        load_seconds = max(5.0, min(30.0, (left - 150.0) / 4)) if device == "cuda" else 0.0
        bench_args = [
            *plan.bench_args,
            *(["--load-seconds", f"{load_seconds:.0f}"] if load_seconds else []),
            "--weights-dir",
            str(weights_dir),
            *server_env,
        ]
        if left < 10:
            steps["benchmark"] = {"status": "no time", "reason": f"{left:.0f} s left"}
        else:
            steps["benchmark"] = step_benchmark(
                tests_dir, out, "benchmark", bench_args, left - STOP_GRACE_S / 2, child_env
            )
            log(f"benchmark: {steps['benchmark']['status']}, cases {steps['benchmark']['cases_measured']}")

        left = clock.left
        if device != "cuda":
            reason = "CUDA only: tests/benchmarks/bench_cpu.py compares the CPU's precisions"
            steps["bf16"] = {"status": "skipped", "reason": reason}
        elif not env_info.get("cuda_bf16"):
            steps["bf16"] = {"status": "skipped", "reason": "this GPU has no bfloat16"}
        elif left < BF16_MIN_S + COMPILE_MIN_S[device]:
            steps["bf16"] = {"status": "skipped", "reason": f"needs {BF16_MIN_S:g} s of budget beside compile"}
        else:
            bf16_args = [
                "--device",
                device,
                "--skip-reference",
                "--cases",
                plan.compile_case,
                "--warmup",
                "2",
                "--alone",
                "5",
                "--concurrency",
                "8",
                "--load-seconds",
                "10",
                "--weights-dir",
                str(weights_dir),
                "--server-env",
                "ENHANCE_PRECISION=bf16",
                *server_env,
            ]
            steps["bf16"] = step_benchmark(tests_dir, out, "bf16", bf16_args, BF16_MIN_S, child_env)
            log(f"bf16: {steps['bf16']['status']}")

        left = clock.left
        needed = COMPILE_MIN_S[device]
        if left < needed:
            reason = f"needs {needed:g} s of budget, {max(left, 0):.0f} s left"
            steps["compile"] = {"status": "skipped", "reason": reason}
        else:
            compile_args = [
                "--device",
                device,
                "--skip-reference",
                "--cases",
                plan.compile_case,
                "--warmup",
                "2",
                "--alone",
                "5",
                "--concurrency",
                "8",
                "--load-seconds",
                "10",
                "--ready-timeout",
                f"{left - STOP_GRACE_S:.0f}",
                "--weights-dir",
                str(weights_dir),
                # One graph: the 512² case's single 512 px tile in batches of one (each shape compiles for minutes).
                "--server-env",
                f"ENHANCE_COMPILE_MODE={COMPILE_MODE}",
                "--server-env",
                f"ENHANCE_COMPILE_TILE_SIDES={plan.compile_tile_side}",
                "--server-env",
                "ENHANCE_TILE_BATCH_SIZE=1",
                "--server-env",
                f"ENHANCE_COMPILE_CACHE_DIR={out / 'compile-cache'}",
                *server_env,
            ]
            timeout_s = left - STOP_GRACE_S / 2
            steps["compile"] = step_benchmark(tests_dir, out, "compile", compile_args, timeout_s, child_env)
            steps["compile"]["mode"] = COMPILE_MODE
        return _finish(write_report())
    except KeyboardInterrupt:
        return _finish(write_report())
    except Exception as error:  # a bug in a step must not lose the report of the others
        steps["acceptance"] = {"status": "failed", "reason": f"{type(error).__name__}: {error}"}
        return _finish(write_report())


def _finish(report: dict[str, Any]) -> int:
    log(f"{report['result']} in {report['elapsed_s']} s; report.md and report.json written")
    return 0 if report["result"] == "passed" else 1


if __name__ == "__main__":
    sys.exit(main())
