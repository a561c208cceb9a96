"""Start-up cost of the scheduler in web processes: how long a fresh process
takes to load the WSGI app and answer its first request with ENABLE_SCHEDULER=1
(it takes the free lease and starts the scheduler meanwhile) against =0; and what
a standby process carries (another process holds the lease) in threads and memory."""

import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path

from benchmarks.database import child_env
from benchmarks.processes import MANAGE, running, wait_for
from benchmarks.report import Figure
from crm.scheduler.lease import LEASE_NAME, current_holder

RUNS = 15  # fresh processes of each kind, interleaved
STANDBYS = 3  # processes of each kind looked at
URL_PATH = "/admin/login/"
FIRST_REQUEST = [sys.executable, "-m", "benchmarks.first_request", URL_PATH]
# Long enough for a standby to have tried the lease and checked alerts once.
SETTLE_SECONDS = 8


def run(sizes: list[int]) -> list[Figure]:
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        env = child_env(LOG_DIR=tmp, ALLOWED_HOSTS="127.0.0.1", SECURE_SSL_REDIRECT="0")
        seconds = {"1": [], "0": []}
        for number in range(RUNS):
            for enabled in ("1", "0") if number % 2 else ("0", "1"):
                seconds[enabled].append(first_request_seconds({**env, "ENABLE_SCHEDULER": enabled}))
        standby, off = standby_footprints(env, Path(tmp))
    on_ms, off_ms = statistics.median(seconds["1"]) * 1000, statistics.median(seconds["0"]) * 1000
    return [
        Figure(
            benchmark="startup",
            measure=f"fresh process: import config.wsgi, answer GET {URL_PATH} "
            f"(median of {RUNS}; with the scheduler it takes the free lease meanwhile)",
            ours=on_ms,
            unit="ms",
            reference=off_ms,
            reference_name="ENABLE_SCHEDULER=0",
            target="≤ 1.05x scheduler off",
            met=on_ms <= 1.05 * off_ms,
        ),
        Figure(
            benchmark="startup",
            measure="threads of a standby web process (another holds the lease)",
            ours=standby["Threads"],
            unit="threads",
            reference=off["Threads"],
            reference_name="ENABLE_SCHEDULER=0",
            target="≤ 1 more than scheduler off",
            met=standby["Threads"] - off["Threads"] <= 1,
        ),
        Figure(
            benchmark="startup",
            measure="resident memory (VmRSS) of a standby web process",
            ours=standby["VmRSS"],
            unit="MB",
            reference=off["VmRSS"],
            reference_name="ENABLE_SCHEDULER=0",
            target="≤ 5 MB more than scheduler off",
            met=standby["VmRSS"] - off["VmRSS"] <= 5,
        ),
    ]


def first_request_seconds(env: dict[str, str]) -> float:
    done = subprocess.run(FIRST_REQUEST, env=env, capture_output=True, text=True, timeout=120)
    return answer(done.stdout.splitlines()[0] if done.stdout else done.stderr)


def answer(line: str) -> float:
    try:
        response = json.loads(line)
    except ValueError:
        raise RuntimeError(f"{' '.join(FIRST_REQUEST)} failed: {line}") from None
    if response["status"] != "200 OK":
        raise RuntimeError(f"GET {URL_PATH} answered {response['status']}")
    return response["seconds"]


def standby_footprints(env: dict[str, str], tmp: Path) -> tuple[dict, dict]:
    """Median Threads and VmRSS (MB) of web processes with the scheduler on, as
    standbys behind a `runscheduler` holding the lease, and with it off."""
    output = tmp / "runscheduler.out"
    with running([*MANAGE, "runscheduler"], env, output) as holder, ExitStack() as stack:
        wait_for(lambda: current_holder(LEASE_NAME), timeout=60, output=output)
        kinds = {enabled: [] for enabled in ("1", "0")}
        for _ in range(STANDBYS):
            for enabled, processes in kinds.items():
                process = stack.enter_context(staying({**env, "ENABLE_SCHEDULER": enabled}))
                processes.append(process)
        time.sleep(SETTLE_SECONDS)
        on, off = ([proc_status(p.pid) for p in kinds[enabled]] for enabled in ("1", "0"))
        if current_holder(LEASE_NAME).pid != holder.pid:
            raise RuntimeError("a web process took the lease from runscheduler")
    return medians(on), medians(off)


@contextmanager
def staying(env: dict[str, str]):
    """A web process that answered its first request and stays until stdin closes."""
    process = subprocess.Popen(
        [*FIRST_REQUEST, "--stay"],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        answer(process.stdout.readline())
        yield process
    finally:
        process.stdin.close()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def proc_status(pid: int) -> dict[str, float]:
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return {"Threads": int(fields["Threads"]), "VmRSS": int(fields["VmRSS"].split()[0]) / 1024}


def medians(statuses: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(status[key] for status in statuses) for key in statuses[0]}
