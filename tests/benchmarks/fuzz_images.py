"""Image fuzzing: every input of the deterministic corpus (``tests/image_corpus.py``, 10,240 inputs from
real photos in every supported format, mutated) goes through ``POST /v1/phota/enhance`` of the real app,
in-process, with a stand-in upscaler in place of the network (``--real-network``: x4plus itself on a
16-px network input); decoding, analysis, rendering, identity and encoding are the real ones. Each
case must end as a 200 or a documented 4xx with a clear ``detail``; a 500, another status, a crash of
the process or a case running past ``--timeout-s`` is a failure. Workers are separate processes, so
that a crash or a hang is caught, reported with the case's index and the worker replaced. Prints
counts by outcome, seed format and mutation, the slowest cases, every failure, and each worker's peak
RSS; exits 1 on any failure.

    .venv/bin/python tests/benchmarks/fuzz_images.py                    # the whole corpus
    .venv/bin/python tests/benchmarks/fuzz_images.py --sample 300       # a seeded sample
    .venv/bin/python tests/benchmarks/fuzz_images.py --only 4711        # reproduce one case
"""

from __future__ import annotations

import argparse
import collections
import json
import multiprocessing as mp
import random
import resource
import sys
import tempfile
import time
from dataclasses import asdict
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from tests.image_corpus import CORPUS_SIZE, Outcome, corpus_case, judge  # noqa: E402

KEY = "fuzz-key"


def fuzz_settings(data_dir: Path, **overrides: Any) -> Any:
    """Settings of the fuzzed app: real network on a 16-px input, 64-px outputs, default limits."""
    from server import Settings

    values: dict[str, Any] = {
        "data_dir": data_dir,
        "api_keys": KEY,
        "device": "cpu",
        "network_max_side": 16,
        "cpu_tile_size": 64,
        "target_long_side": 64,
        "max_concurrent_jobs": 1,
    }
    values.update(overrides)
    return Settings(**values)


class StandInUpscaler(torch.nn.Module):
    """A cheap stand-in for the ×4 network (bilinear upsampling), so that a case costs what decoding,
    analysis, rendering, identity and encoding cost: those are what hostile inputs can break."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.interpolate(x, scale_factor=4, mode="bilinear", align_corners=False)


def install_stand_in_network(app: Any) -> None:
    """Swap the loaded app's networks for :class:`StandInUpscaler` (call inside the app's lifespan)."""
    from server.services import services_of
    from tests.conftest import stand_in_model

    engine = services_of(app).runtime
    stand_in = stand_in_model(StandInUpscaler())
    engine.models = dict.fromkeys(engine.models or {"photo": None}, stand_in)
    engine.model = stand_in


def _worker(connection: Connection, timeout_s: float, real_network: bool) -> None:
    from fastapi.testclient import TestClient

    from server import create_app

    with tempfile.TemporaryDirectory(prefix="fuzz-") as data_dir:
        app = create_app(fuzz_settings(Path(data_dir), sync_timeout_s=timeout_s))
        with TestClient(app, raise_server_exceptions=False) as client:
            if not real_network:
                install_stand_in_network(app)
            connection.send(("ready", None))
            while True:
                index = connection.recv()
                if index is None:
                    return
                case = corpus_case(index)
                started = time.perf_counter()
                response = client.post(
                    "/v1/phota/enhance",
                    headers={"X-API-Key": KEY},
                    json={"image": case.payload, "output_format": "png"},
                )
                try:
                    body: object = response.json()
                except ValueError:
                    body = None
                outcome = judge(index, response.status_code, body, time.perf_counter() - started)
                peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
                connection.send(("done", (asdict(outcome), peak_mib)))


class Worker:
    """One worker process and the case it is running."""

    def __init__(self, context: Any, timeout_s: float, real_network: bool) -> None:
        self.connection, child = context.Pipe()
        self.process = context.Process(target=_worker, args=(child, timeout_s, real_network), daemon=True)
        self.process.start()
        child.close()
        self.case: int | None = None
        self.started = 0.0
        self.ready = False
        self.peak_mib = 0.0

    def stop(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(5)


def run(indices: list[int], workers: int, timeout_s: float, real_network: bool) -> tuple[list[Outcome], list[float]]:
    context = mp.get_context("spawn")
    pending = collections.deque(indices)
    outcomes: list[Outcome] = []
    peaks: list[float] = []
    pool = [Worker(context, timeout_s, real_network) for _ in range(workers)]
    last_report = time.monotonic()
    # The app's own limit answers 504 at timeout_s; the watchdog catches what even that cannot stop.
    hard_limit = timeout_s + 30
    while pool:
        for position, worker in enumerate(list(pool)):
            if worker.connection.poll(0.05):
                try:
                    kind, payload = worker.connection.recv()
                except EOFError:
                    kind, payload = "died", None
                if kind == "ready":
                    worker.ready = True
                elif kind == "done":
                    outcome, peak = payload
                    outcomes.append(Outcome(**outcome))
                    worker.peak_mib = max(worker.peak_mib, peak)
                    worker.case = None
            if kind_died(worker):
                if worker.case is not None:
                    outcomes.append(
                        Outcome(
                            worker.case, -1, "", "", 0.0, False, f"the worker process died ({worker.process.exitcode})"
                        )
                    )
                peaks.append(worker.peak_mib)
                worker.stop()
                pool[position] = Worker(context, timeout_s, real_network)
                continue
            if worker.case is not None and time.monotonic() - worker.started > hard_limit:
                outcomes.append(Outcome(worker.case, -2, "", "", hard_limit, False, "hung past the time limit"))
                peaks.append(worker.peak_mib)
                worker.stop()
                pool[position] = Worker(context, timeout_s, real_network)
                continue
            if worker.ready and worker.case is None:
                if pending:
                    worker.case = pending.popleft()
                    worker.started = time.monotonic()
                    worker.connection.send(worker.case)
                else:
                    worker.connection.send(None)
                    worker.process.join(30)
                    peaks.append(worker.peak_mib)
                    pool.remove(worker)
        if time.monotonic() - last_report > 60:
            last_report = time.monotonic()
            failures = sum(not o.ok for o in outcomes)
            print(f"... {len(outcomes)}/{len(indices)} done, {failures} failures", file=sys.stderr, flush=True)
    return outcomes, peaks


def kind_died(worker: Worker) -> bool:
    return not worker.process.is_alive() and worker.process.exitcode is not None


def report(outcomes: list[Outcome], peaks: list[float], seconds: float) -> dict[str, Any]:
    by_result = collections.Counter(f"{o.status} {o.code}" if o.ok else "FAIL" for o in outcomes)
    by_seed: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    by_mutation: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for outcome in outcomes:
        case = corpus_case(outcome.index)
        label = "200" if outcome.ok and outcome.status == 200 else ("4xx" if outcome.ok else "FAIL")
        by_seed[case.seed][label] += 1
        by_mutation[case.mutation.split("+")[0]][label] += 1
    failures = [o for o in outcomes if not o.ok]
    slowest = sorted(outcomes, key=lambda o: o.seconds, reverse=True)[:5]
    print(f"inputs: {len(outcomes)}   wall: {seconds:.0f} s   failures: {len(failures)}")
    print("outcomes:", ", ".join(f"{k}: {v}" for k, v in sorted(by_result.items())))
    print(f"{'seed':<26} {'200':>6} {'4xx':>6} {'FAIL':>6}")
    for seed, counts in sorted(by_seed.items()):
        print(f"{seed:<26} {counts['200']:>6} {counts['4xx']:>6} {counts['FAIL']:>6}")
    print(f"{'first mutation':<26} {'200':>6} {'4xx':>6} {'FAIL':>6}")
    for mutation, counts in sorted(by_mutation.items()):
        print(f"{mutation:<26} {counts['200']:>6} {counts['4xx']:>6} {counts['FAIL']:>6}")
    print("slowest:", ", ".join(f"#{o.index} {o.seconds:.2f} s ({o.status})" for o in slowest))
    print(f"peak RSS per worker process (MiB): {', '.join(f'{p:.0f}' for p in peaks)}")
    for failure in failures:
        case = corpus_case(failure.index)
        where = f"#{failure.index} {case.seed} {case.mutation}"
        print(f"FAIL {where}: {failure.problem} {failure.code} {failure.detail[:200]}")
    return {
        "inputs": len(outcomes),
        "wall_s": round(seconds, 1),
        "failures": [asdict(f) for f in failures],
        "outcomes": dict(by_result),
        "by_seed": {k: dict(v) for k, v in by_seed.items()},
        "by_mutation": {k: dict(v) for k, v in by_mutation.items()},
        "peak_rss_mib": [round(p) for p in peaks],
        "p50_s": sorted(o.seconds for o in outcomes)[len(outcomes) // 2] if outcomes else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=CORPUS_SIZE, help="corpus size (indices 0..count-1)")
    parser.add_argument("--sample", type=int, default=0, help="run a seeded sample of this many indices")
    parser.add_argument("--only", type=int, nargs="*", default=None, help="run just these indices")
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--timeout-s", type=float, default=60.0, help="time limit of one case")
    parser.add_argument("--max-rss-mib", type=float, default=4096.0, help="fail when a worker's peak RSS passes it")
    parser.add_argument(
        "--real-network", action="store_true", help="run x4plus itself (on a 16-px input) instead of the stand-in"
    )
    parser.add_argument("--json", type=Path, default=None, help="write the figures and failures here")
    args = parser.parse_args()
    indices = list(range(args.count))
    if args.only:
        indices = list(args.only)
    elif args.sample:
        indices = sorted(random.Random(15).sample(indices, min(args.sample, len(indices))))
    started = time.monotonic()
    outcomes, peaks = run(indices, args.workers, args.timeout_s, args.real_network)
    figures = report(outcomes, peaks, time.monotonic() - started)
    over = [p for p in peaks if p > args.max_rss_mib]
    if over:
        print(f"FAIL: a worker's peak RSS {max(over):.0f} MiB passed --max-rss-mib {args.max_rss_mib:.0f}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))
    sys.exit(1 if figures["failures"] or over else 0)


if __name__ == "__main__":
    main()
