"""How many rows a bulk job writes per transaction."""

import time
from contextlib import contextmanager

# Long enough that each transaction's fixed cost (on SQLite, a WAL checkpoint
# with an fsync) is spread over many rows; short enough that no transaction
# holds its rows, or SQLite's write lock, for long.
TRANSACTION_SECONDS = 0.4
SMALLEST, LARGEST = 500, 100_000


class BatchSize:
    """A batch size that follows how long the last transaction took: started at
    `initial`, it grows at most twofold a step and shrinks as fast as needed.
    `fixed` keeps it where it starts (a size asked for by hand)."""

    def __init__(self, initial: int = 5000, fixed: bool = False):
        self.current = initial
        self.fixed = fixed

    @contextmanager
    def timing(self):
        started = time.perf_counter()
        yield
        self.took(time.perf_counter() - started)

    def took(self, seconds: float) -> None:
        """The last batch took `seconds`: size the next one."""
        if self.fixed:
            return
        wanted = self.current * 2 if seconds <= 0 else self.current * TRANSACTION_SECONDS / seconds
        self.current = int(max(SMALLEST, min(LARGEST, self.current * 2, wanted)))
