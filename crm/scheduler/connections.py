"""Database connections in the scheduler's long-lived threads.

Django replaces a connection around each web request. The scheduler's threads
(APScheduler's dispatch loop, the lease keeper, job threads, the alert
checker) live as long as the process, so a connection the server dropped (a
restart, a terminated backend, MariaDB's wait_timeout, a failover) would stay
dead in them forever. The rule here: a query that fails for a connection
reason closes that thread's connection, and the next query opens a new one.
"""

import contextlib
import logging
from functools import wraps

from django.db import (
    DatabaseError,
    InterfaceError,
    OperationalError,
    close_old_connections,
    connection,
)

logger = logging.getLogger("crm.scheduler")

# What a lost connection raises: psycopg's "the connection is closed" and
# "terminating connection due to administrator command", MySQL's "server has
# gone away", "Lost connection", "Can't connect".
CONNECTION_ERRORS = (OperationalError, InterfaceError)


def drop_connection() -> None:
    """Close this thread's connection so the next query opens a new one.
    Never inside a transaction: the test suite wraps each test in one."""
    if connection.in_atomic_block:
        return
    # Closing a broken connection may fail; Django forgets it anyway.
    with contextlib.suppress(DatabaseError):
        connection.close()


def close_stale_connection() -> None:
    """Close this thread's connection if it is unusable or past CONN_MAX_AGE,
    as Django does around a request. Never inside a transaction."""
    if not connection.in_atomic_block:
        close_old_connections()


def close_unusable_connection() -> None:
    """Close this thread's connection if it cannot serve the next query: a
    query on it failed and it no longer answers, or it was left outside
    autocommit. Unlike `close_stale_connection`, a healthy connection stays
    open whatever CONN_MAX_AGE says (a scheduler thread is not a request).
    Never inside a transaction."""
    if connection.connection is None or connection.in_atomic_block:
        return
    if not connection.get_autocommit():
        drop_connection()
    elif connection.errors_occurred:
        if connection.is_usable():
            connection.errors_occurred = False
        else:
            drop_connection()


def reconnecting(method):
    """Retry a read or an idempotent write once on a fresh connection when the
    first attempt failed for a connection reason; if that fails too, drop the
    connection again and raise."""

    @wraps(method)
    def wrapper(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except CONNECTION_ERRORS:
            if connection.in_atomic_block:
                raise
            drop_connection()
        try:
            return method(*args, **kwargs)
        except CONNECTION_ERRORS:
            drop_connection()
            raise

    return wrapper


def database_reachable() -> bool:
    """Whether a new connection can be opened and answers a query."""
    drop_connection()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except DatabaseError:
        drop_connection()
        return False


def describe(error: DatabaseError) -> str:
    """One line about a database error, for people."""
    return " ".join(str(error).split()) or type(error).__name__
