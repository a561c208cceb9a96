"""The job of the isolation benchmark, and reading what it wrote. Only the
standard library: an isolated run imports this module in its child process,
and the benchmark measures that process."""

import os
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path


def peak_rss_kb() -> int:
    """This process's peak resident memory so far (VmHWM), in KiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise LookupError("VmHWM")


def record_start(log: str, fire_time: datetime | None = None) -> None:
    """Append when this run's function started, the fire time it serves (0
    when run by hand), the process and its peak memory so far."""
    started = time.time()
    scheduled = fire_time.timestamp() if fire_time is not None else 0.0
    line = f"{started:.6f} {scheduled:.6f} {os.getpid()} {peak_rss_kb()}\n"
    descriptor = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(descriptor, line.encode())
    finally:
        os.close(descriptor)


@dataclass(frozen=True)
class Start:
    started: float  # Unix time the job function began
    scheduled: float  # Unix time of the fire it serves (0: run by hand)
    pid: int
    peak_rss_kb: int  # VmHWM of the process running it, as it began

    @property
    def lateness(self) -> float:
        return self.started - self.scheduled


def read_starts(log: Path) -> list[Start]:
    if not log.exists():
        return []
    rows = (line.split() for line in log.read_text().splitlines())
    return [Start(float(a), float(b), int(pid), int(kb)) for a, b, pid, kb in rows]
