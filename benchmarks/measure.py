"""Wall time, the longest single transaction or statement, and peak memory."""

import gc
import resource
import time
from contextlib import contextmanager

from django.db import connection
from django.test import Client

from config.serving import keep_loaded_objects_out_of_collections


@contextmanager
def stopwatch():
    """`with stopwatch() as elapsed: ...; elapsed()` is the block's wall time in seconds."""
    started = time.perf_counter()
    finished = None

    def elapsed() -> float:
        return (finished or time.perf_counter()) - started

    try:
        yield elapsed
    finally:
        finished = time.perf_counter()


class LongestStatement:
    """Times every statement on the default connection; also the longest stretch
    between a transaction's start and its commit (Django's atomic blocks)."""

    def __init__(self):
        self.longest_statement = 0.0
        self.longest_transaction = 0.0
        self._transaction_started = None

    def __call__(self, execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.longest_statement = max(self.longest_statement, time.perf_counter() - started)

    @contextmanager
    def watching(self):
        with connection.execute_wrapper(self):
            original_commit = connection.commit
            original_set_autocommit = connection.set_autocommit

            def set_autocommit(autocommit, *args, **kwargs):
                if not autocommit:
                    self._transaction_started = time.perf_counter()
                return original_set_autocommit(autocommit, *args, **kwargs)

            def commit():
                result = original_commit()
                if self._transaction_started is not None:
                    self.longest_transaction = max(
                        self.longest_transaction, time.perf_counter() - self._transaction_started
                    )
                    self._transaction_started = None
                return result

            connection.set_autocommit, connection.commit = set_autocommit, commit
            try:
                yield self
            finally:
                del connection.set_autocommit, connection.commit


def peak_rss_mb() -> float:
    """This process's peak resident memory so far (Linux: ru_maxrss is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@contextmanager
def as_in_a_server():
    """The app loaded, its objects kept out of the collector as the WSGI entry point does."""
    client = Client()
    client.get("/health/scheduler/")  # loads the URLs and views
    keep_loaded_objects_out_of_collections()
    try:
        yield
    finally:
        gc.unfreeze()
