"""Every replica's Prometheus metrics behind one ``/metrics``: each replica publishes its own exposition
to a small Ray actor (the board) every few seconds and whenever it answers ``/metrics``; the answer is
every live replica's samples, each labelled ``replica="<id>"``."""

from __future__ import annotations

import threading
import time
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.utils import floatToGoString

BOARD_NAME = "enhance-metrics-board"
BOARD_NAMESPACE = "enhance-cluster"
STALE_AFTER_S = 30.0  # a replica that has not published for this long is gone (killed or scaled down)
PUBLISH_INTERVAL_S = 5.0


class MetricsBoard:
    """The latest exposition of each replica (a Ray actor; its methods run one at a time)."""

    def __init__(self) -> None:
        self._latest: dict[str, tuple[float, str]] = {}

    def publish(self, replica: str, exposition: str) -> None:
        self._latest[replica] = (time.time(), exposition)

    def snapshot(self) -> dict[str, str]:
        cutoff = time.time() - STALE_AFTER_S
        self._latest = {name: entry for name, entry in self._latest.items() if entry[0] >= cutoff}
        return {name: text for name, (_, text) in self._latest.items()}


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def merge_expositions(by_replica: dict[str, str]) -> str:
    """One Prometheus text exposition holding every replica's samples with a ``replica`` label (HELP and
    TYPE once per metric family)."""
    families: dict[str, tuple[str, str, list[str]]] = {}
    for replica in sorted(by_replica):
        for family in text_string_to_metric_families(by_replica[replica]):
            _, _, lines = families.setdefault(family.name, (family.documentation, family.type, []))
            for sample in family.samples:
                labels = {**sample.labels, "replica": replica}
                rendered = ",".join(f'{key}="{_escape(str(value))}"' for key, value in labels.items())
                lines.append(f"{sample.name}{{{rendered}}} {floatToGoString(sample.value)}")
    out: list[str] = []
    for name, (documentation, kind, lines) in families.items():
        out.append(f"# HELP {name} {documentation.replace(chr(92), chr(92) * 2).replace(chr(10), chr(92) + 'n')}")
        out.append(f"# TYPE {name} {kind}")
        out.extend(lines)
    return "\n".join(out) + "\n"


class ReplicaMetricsPublisher:
    """Publishes one replica's exposition (``render()``) to the board now and every few seconds."""

    def __init__(self, board: Any, replica: str, render: Any, interval_s: float = PUBLISH_INTERVAL_S) -> None:
        self._board = board
        self._replica = replica
        self._render = render
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="metrics-publisher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def publish(self) -> None:
        self._board.publish.remote(self._replica, self._render())

    def _loop(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self.publish()
            except Exception:  # the board restarting must not kill the replica; the next round retries
                continue

    async def exposition(self) -> str:
        """Publish this replica's figures, then answer with every live replica's."""
        self.publish()
        snapshot: dict[str, str] = await self._board.snapshot.remote()
        if self._replica not in snapshot:
            snapshot[self._replica] = self._render()
        return merge_expositions(snapshot)
