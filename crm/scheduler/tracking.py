"""The runs a scheduler has started in this process and not finished recording.

One `RunsInProcess` belongs to each scheduler lifecycle (crm.scheduler.runner)
and outlives its activations: a process that loses the lease and takes it
again must not mark its own runs interrupted, and the end of a run that came
while the database was away is written by the lease keeper once it answers.
"""

import logging
import threading

from crm.scheduler import history

logger = logging.getLogger("crm.scheduler")


class RunsInProcess:
    def __init__(self):
        self._lock = threading.Lock()
        self._going: set[int] = set()
        self._unrecorded: list[history.Ending] = []

    def started(self, execution_id: int) -> None:
        with self._lock:
            self._going.add(execution_id)

    def ended(self, execution_id: int, unrecorded: history.Ending | None = None) -> None:
        """`unrecorded`: the run's end, when the database did not take it."""
        with self._lock:
            self._going.discard(execution_id)
            if unrecorded is not None:
                self._unrecorded.append(unrecorded)

    def going(self) -> frozenset[int]:
        """History rows of the runs going on here."""
        with self._lock:
            return frozenset(self._going)

    def in_progress(self) -> frozenset[int]:
        """History rows of the runs going on here, or whose end is yet to be written."""
        with self._lock:
            return frozenset(self._going | {end.execution_id for end in self._unrecorded})

    def record_unrecorded_ends(self) -> int:
        """Write the ends kept by `ended`; returns how many were written."""
        with self._lock:
            pending = list(self._unrecorded)
        written = 0
        for ending in pending:
            if not history.write_ending(ending):
                break
            with self._lock:
                self._unrecorded.remove(ending)
            written += 1
        if written:
            logger.info("scheduler recorded the end of %d run(s) the database had missed", written)
        return written
