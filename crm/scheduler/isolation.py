"""Isolated runs: a job with a `timeout_seconds` runs in a child process
(crm.scheduler.child) that is killed when the timeout passes.

A thread stuck in a C call (`time.sleep`, a blocking socket read) or in a
busy loop cannot be stopped; a process can, and the database rolls back the
transaction its connection held. The cost is a fresh interpreter that sets
Django up for each run (see the benchmarks in the README).
"""

import contextlib
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

from django.conf import settings
from django.db import connection

from crm.scheduler import run_label


class JobTimedOut(Exception):
    pass


class RunStopped(Exception):
    """The scheduler stopped while the run went on, and killed its process."""


@dataclass
class ChildFailed(Exception):
    """What the job raised in its process, as it would have read here."""

    type_name: str
    classes: list[str]  # dotted names of the exception's class and its bases
    message: str
    traceback_text: str

    def __str__(self):
        return self.message


class ChildRuns:
    """The children of isolated runs going on in this process, so that a
    stopping scheduler can end them (`stop_all`)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._going: dict[subprocess.Popen, str | None] = {}

    def add(self, child: subprocess.Popen) -> None:
        with self._lock:
            self._going[child] = None

    def remove(self, child: subprocess.Popen) -> str | None:
        """Why the child was stopped by `stop_all`, or None."""
        with self._lock:
            return self._going.pop(child, None)

    def stop_all(self, reason: str) -> int:
        with self._lock:
            going = [child for child, stopped in self._going.items() if stopped is None]
            for child in going:
                self._going[child] = reason
        for child in going:
            _kill(child)
        return len(going)

    def __len__(self):
        with self._lock:
            return len(self._going)


def run_in_child(func: str, args, kwargs, timeout: float, children: ChildRuns):
    """Call the function at dotted path `func` in a new process and return what
    it returned; raise ChildFailed with what it raised, JobTimedOut once
    `timeout` seconds pass, RunStopped if `children.stop_all` ended it."""
    request = pickle.dumps(
        {
            "func": func,
            "args": tuple(args),
            "kwargs": dict(kwargs),
            "database_name": connection.settings_dict["NAME"],
            "parent_pid": os.getpid(),
            "label": run_label.current(),  # for the job's log lines
        }
    )
    started = time.monotonic()
    child = subprocess.Popen(
        [sys.executable, "-m", "crm.scheduler.child"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=child_environment(),
        cwd=settings.BASE_DIR,
        start_new_session=True,  # its own process group: killed with what it started
    )
    children.add(child)
    try:
        output, _ = child.communicate(request, timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill(child)
        raise JobTimedOut(
            f"Timed out: still running after {time.monotonic() - started:.1f} s "
            f"(timeout_seconds={timeout:g}); its process was killed and its database "
            "work rolled back."
        ) from None
    finally:
        stopped = children.remove(child)
    if stopped is not None:
        raise RunStopped(stopped)
    return _outcome(output, child.returncode)


def child_environment() -> dict[str, str]:
    return {
        **os.environ,
        # Set by manage.py, wsgi.py and passenger_wsgi.py before settings load.
        "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "config.settings"),
        "PYTHONPATH": os.pathsep.join(path for path in sys.path if path),
        "ENABLE_SCHEDULER": "0",  # a child runs one job, never a scheduler
    }


def _outcome(output: bytes, returncode: int):
    try:
        outcome = pickle.loads(output)
    except Exception:  # nothing, or half an outcome: the process died
        raise ChildFailed(
            "ChildProcessError",
            [],
            f"The job's process ended with exit code {returncode} before it told how the "
            "run went; see the log for its output.",
            "",
        ) from None
    if outcome["ok"]:
        return outcome["result"]
    raise ChildFailed(outcome["type"], outcome["classes"], outcome["message"], outcome["traceback"])


def _kill(child: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, signal.SIGKILL)
    child.wait()
