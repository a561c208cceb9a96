"""Processes a benchmark starts: in process groups of their own (tests.support.processes'
helpers), always stopped at the end, and their output shown when they fail."""

import sys
from contextlib import contextmanager
from pathlib import Path

from tests.support.processes import free_port, start_group, stop_group, wait_until

__all__ = ["MANAGE", "free_port", "running", "wait_for"]
MANAGE = [sys.executable, "manage.py"]


@contextmanager
def running(command: list[str], env: dict[str, str], output: Path):
    """Starts `command` (output to the file `output`); stops it with SIGTERM on exit."""
    process = start_group(command, env, output=output)
    try:
        yield process
    finally:
        stop_group(process)


def wait_for(condition, timeout: float, output: Path, interval: float = 0.2):
    """`condition()` once true; after `timeout` s an error ending with `output`'s last lines."""
    try:
        return wait_until(condition, timeout=timeout, interval=interval)
    except AssertionError:
        tail = output.read_text()[-3000:] if output.exists() else "(no output)"
        raise RuntimeError(f"gave up after {timeout} s; {output.name} ends:\n{tail}") from None
