"""The child process of an isolated run (`python -m crm.scheduler.child`).

A fresh interpreter, not a fork of the threaded scheduler: it sets Django up,
reads what to run from stdin (crm.scheduler.isolation), calls the job in one
database transaction, so that a run stopped half-way leaves nothing behind,
and writes the outcome to stdout. The job's own output goes to stderr. It ends
itself if the scheduler process that started it goes away.
"""

import os
import pickle
import sys
import threading
import time
import traceback

PARENT_GONE_EXIT = 70
PARENT_CHECK_SECONDS = 0.2


def main() -> int:
    request = pickle.load(sys.stdin.buffer)
    outcome_stream = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    _end_with_parent(request["parent_pid"])
    outcome = _run(request)
    pickle.dump(_picklable(outcome), outcome_stream)
    outcome_stream.close()
    return 0


def _run(request) -> dict:
    try:
        import django

        django.setup()
        from django.db import connections, transaction
        from django.utils.module_loading import import_string

        from crm.scheduler import run_label

        run_label.adopt(request["label"])

        database = connections["default"].settings_dict
        # The scheduler's own database, even where it differs from the settings
        # file's (a database set up at run time, such as a test database).
        database["NAME"] = request["database_name"]
        if database["ENGINE"] == "django.db.backends.sqlite3":
            # The job's one transaction takes SQLite's write lock at its first
            # write, not at BEGIN: a job that hangs before writing (or never
            # writes) must not hold up every other writer, the lease's renewal
            # first of all.
            database["OPTIONS"] = {**database.get("OPTIONS", {}), "transaction_mode": "DEFERRED"}
        func = import_string(request["func"])
        with transaction.atomic():
            result = func(*request["args"], **request["kwargs"])
        return {"ok": True, "result": result}
    except BaseException as error:  # all of it is the job's outcome
        return {
            "ok": False,
            "type": type(error).__name__,
            "classes": [f"{cls.__module__}.{cls.__qualname__}" for cls in type(error).__mro__],
            "message": str(error),
            "traceback": traceback.format_exc(),
        }


def _picklable(outcome: dict) -> dict:
    try:
        pickle.dumps(outcome)
    except Exception:  # any value a job may return
        return {**outcome, "result": repr(outcome.get("result"))}
    return outcome


def _end_with_parent(parent_pid: int) -> None:
    """A scheduler killed with -9 cannot stop its children: they stop themselves."""

    def watch():
        while os.getppid() == parent_pid:
            time.sleep(PARENT_CHECK_SECONDS)
        os._exit(PARENT_GONE_EXIT)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
