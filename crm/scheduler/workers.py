"""The threads that runs go on in, kept between runs with their database connection.

Django's connections belong to a thread, so a thread started for each run
opened a connection for each run: on PostgreSQL that was most of the time
from a fire to its job's first line. A worker that finishes a run waits up to
IDLE_SECONDS for the next one, then closes its connection and ends. A
connection is closed after a run that left it unusable (a query failed for a
connection reason and it no longer answers) or outside autocommit, so the
next run opens a new one; one cut while idle fails the run's first query,
which crm.scheduler.connections.reconnecting retries on a new one.

Daemon threads, never joined at interpreter exit: the runner waits a bounded
time for running jobs instead (crm.scheduler.execution.FireTimeThreadExecutor).
"""

import queue
import threading
from collections.abc import Callable

from crm.scheduler.connections import close_unusable_connection, drop_connection

# Long enough for a job firing every minute or so to find its worker waiting.
IDLE_SECONDS = 300.0


class WorkerThreads:
    def __init__(self, idle_seconds: float = IDLE_SECONDS):
        self.idle_seconds = idle_seconds
        self._lock = threading.Lock()
        self._idle: list[queue.SimpleQueue] = []  # one task queue per waiting worker
        self._busy = threading.Condition(self._lock)
        self._running = 0
        self._closed = False

    def run(self, name: str, task: Callable[[], None]) -> None:
        """Call `task()` in a worker thread named `name`: a waiting one, or a new one."""
        with self._lock:
            self._running += 1
            tasks = self._idle.pop() if self._idle else None
        if tasks is None:
            tasks = queue.SimpleQueue()
            threading.Thread(target=self._serve, args=(tasks,), daemon=True).start()
        tasks.put((name, task))

    def running(self) -> int:
        """How many tasks handed to `run` have not returned yet."""
        with self._lock:
            return self._running

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the running tasks to return; False if some still run after `timeout`."""
        with self._busy:
            return self._busy.wait_for(lambda: self._running == 0, timeout)

    def close(self) -> None:
        """End the waiting workers (and their connections); running ones end after their task."""
        with self._lock:
            self._closed = True
            waiting, self._idle = self._idle, []
        for tasks in waiting:
            tasks.put(None)

    def _serve(self, tasks: queue.SimpleQueue) -> None:
        try:
            while (handed := self._next(tasks)) is not None:
                name, task = handed
                threading.current_thread().name = name
                try:
                    task()
                finally:
                    close_unusable_connection()
                    with self._busy:
                        self._running -= 1
                        if not self._closed:
                            self._idle.append(tasks)
                        self._busy.notify_all()
                if self._closed:
                    return
        finally:
            drop_connection()  # this thread's own; it ends here

    def _next(self, tasks: queue.SimpleQueue):
        """The next task, or None once idle too long or closed."""
        while True:
            try:
                return tasks.get(timeout=self.idle_seconds)
            except queue.Empty:
                with self._lock:
                    if tasks in self._idle:
                        self._idle.remove(tasks)
                        return None
                # `run` took this worker as the wait ended: its task is on the way.
