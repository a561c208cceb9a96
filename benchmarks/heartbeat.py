"""The every-second job of the dispatch and failover benchmarks, and reading
what it wrote: one line per run, appended by whichever process ran it."""

import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path


def record_fire(fire_time: datetime, log: str | None = None) -> None:
    """Append when this run started, the fire time it serves and the process.
    `log` defaults to BENCH_FIRE_LOG (set for the processes a benchmark starts)."""
    started = time.time()
    line = f"{started:.6f} {fire_time.timestamp():.6f} {os.getpid()}\n"
    descriptor = os.open(
        log or os.environ["BENCH_FIRE_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT
    )
    try:
        os.write(descriptor, line.encode())
    finally:
        os.close(descriptor)


def record_grid_fire(log: str, offset: float) -> None:
    """`record_fire` for a scheduler that does not pass the fire time: its job
    fires every second, `offset` seconds past it, so the fire is the last such time."""
    now = time.time()
    record_fire(datetime.fromtimestamp(now - (now - offset) % 1, UTC), log)


@dataclass(frozen=True)
class Fire:
    started: float  # Unix time the job function began
    scheduled: float  # Unix time of the fire it serves
    pid: int

    @property
    def lateness(self) -> float:
        return self.started - self.scheduled


def read_fires(log: Path) -> list[Fire]:
    if not log.exists():
        return []
    lines = (line.split() for line in log.read_text().splitlines())
    return [Fire(float(started), float(scheduled), int(pid)) for started, scheduled, pid in lines]
