"""Which job and fire the current thread is running, for its log lines
(crm.log_format). A module of its own, free of models, because logging is
configured before Django loads the apps."""

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class RunLabel:
    job_id: str
    fire_time: datetime
    run_id: int | None = None  # the run's history row, once it has one


_current: contextvars.ContextVar[RunLabel | None] = contextvars.ContextVar(
    "run_label", default=None
)


def current() -> RunLabel | None:
    return _current.get()


@contextmanager
def labelled(job_id: str, fire_time: datetime, run_id: int | None = None) -> Iterator[None]:
    """Lines logged in the block (in this thread) are the fire's."""
    token = _current.set(RunLabel(job_id, fire_time, run_id))
    try:
        yield
    finally:
        _current.reset(token)


def adopt(label: RunLabel | None) -> None:
    """Lines logged from now on in this thread are `label`'s fire's (for the
    child process of an isolated run, which runs that one fire and ends)."""
    _current.set(label)
