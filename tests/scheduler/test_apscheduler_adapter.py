"""crm/scheduler/apscheduler_adapter.py is the one module in crm/ that uses
APScheduler's and django-apscheduler's private names. These tests fail, naming
the attribute, when an upgrade of either library removes or changes one of
them, or when the library stops calling a hook the adapter overrides; and when
any other module in crm/ uses a private name of either library."""

import ast
import inspect
import logging
import pickle
import threading
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import apscheduler
import django_apscheduler
import pytest
from apscheduler.events import EVENT_JOB_EXECUTED
from apscheduler.executors.base import BaseExecutor
from apscheduler.job import Job
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from django_apscheduler.jobstores import DjangoJobStore

from crm.scheduler import apscheduler_adapter
from crm.scheduler.apscheduler_adapter import (
    HookedBackgroundScheduler,
    HookedDjangoJobStore,
    HookedExecutor,
)
from tests.support.processes import wait_until

PROJECT_DIR = Path(__file__).resolve().parents[2]
ADAPTER = Path(apscheduler_adapter.__file__).resolve()
RELIES = "crm/scheduler/apscheduler_adapter.py relies on it"
P = inspect.Parameter
# Each private method the adapter calls or overrides, with the parameters it
# relies on: (name, kind, default).
PRIVATE_METHODS = {
    (BackgroundScheduler, "_process_jobs"): [("self", P.POSITIONAL_OR_KEYWORD, P.empty)],
    (BackgroundScheduler, "_main_loop"): [("self", P.POSITIONAL_OR_KEYWORD, P.empty)],
    (BackgroundScheduler, "_lookup_executor"): [
        ("self", P.POSITIONAL_OR_KEYWORD, P.empty),
        ("alias", P.POSITIONAL_OR_KEYWORD, P.empty),
    ],
    (BaseExecutor, "_do_submit_job"): [
        ("self", P.POSITIONAL_OR_KEYWORD, P.empty),
        ("job", P.POSITIONAL_OR_KEYWORD, P.empty),
        ("run_times", P.POSITIONAL_OR_KEYWORD, P.empty),
    ],
    (BaseExecutor, "_run_job_success"): [
        ("self", P.POSITIONAL_OR_KEYWORD, P.empty),
        ("job_id", P.POSITIONAL_OR_KEYWORD, P.empty),
        ("events", P.POSITIONAL_OR_KEYWORD, P.empty),
    ],
    (BaseExecutor, "_run_job_error"): [
        ("self", P.POSITIONAL_OR_KEYWORD, P.empty),
        ("job_id", P.POSITIONAL_OR_KEYWORD, P.empty),
        ("exc", P.POSITIONAL_OR_KEYWORD, P.empty),
        ("traceback", P.POSITIONAL_OR_KEYWORD, None),
    ],
    (DjangoJobStore, "_get_jobs"): [
        ("self", P.POSITIONAL_OR_KEYWORD, P.empty),
        ("filters", P.VAR_KEYWORD, P.empty),
    ],
    (DjangoJobStore, "_reconstitute_job"): [
        ("self", P.POSITIONAL_OR_KEYWORD, P.empty),
        ("job_state", P.POSITIONAL_OR_KEYWORD, P.empty),
    ],
}
# Each private attribute the adapter reads or sets: its owner and a check of
# what it holds.
PRIVATE_ATTRIBUTES = {
    "BackgroundScheduler()._jobstores_lock": lambda: isinstance(
        BackgroundScheduler()._jobstores_lock, type(threading.RLock())
    ),
    "BackgroundScheduler()._jobstores": lambda: isinstance(
        BackgroundScheduler(jobstores={"default": MemoryJobStore()})._jobstores, dict
    ),
    "BaseExecutor()._instances": lambda: (
        isinstance(_Executor()._instances, defaultdict) and _Executor()._instances["job"] == 0
    ),
    "BaseExecutor()._lock": lambda: all(
        hasattr(_started_executor()._lock, method) for method in ("__enter__", "__exit__")
    ),
    "BaseExecutor._logger": lambda: isinstance(BaseExecutor._logger, logging.Logger),
    "Job._scheduler": lambda: "_scheduler" in Job.__slots__,
    "Job._jobstore_alias": lambda: "_jobstore_alias" in Job.__slots__,
}
PRIVATE_NAMES = {name for _, name in PRIVATE_METHODS} | {
    check.rsplit(".", 1)[1] for check in PRIVATE_ATTRIBUTES
}
# Hooks the adapter adds under public names: a library method of the same name
# would be overridden without anyone noticing.
ADAPTER_NAMES = {
    BackgroundScheduler: {
        "process_due_jobs",
        "thread_ended",
        "jobstores_lock",
        "job_stores",
        "lookup_executor",
        "submit_once",
    },
    BaseExecutor: {"start_run", "run_and_report", "has_running_jobs", "runs_elsewhere"},
    DjangoJobStore: {"load_jobs", "job_from_state"},
}
# Private names of the libraries that crm's own objects also use, for their
# own threads and locks (runner, watcher, outage log, log filter). Add a name
# here only for such a use, never for one on a library's object.
OWN_NAMES = {"_lock", "_thread"}


class _Executor(BaseExecutor):
    def _do_submit_job(self, job, run_times):
        pass


def _started_executor() -> _Executor:
    executor = _Executor()
    executor.start(BackgroundScheduler(), "default")
    return executor


@pytest.mark.parametrize(
    ("owner", "name"),
    list(PRIVATE_METHODS),
    ids=[f"{owner.__name__}.{name}" for owner, name in PRIVATE_METHODS],
)
def test_each_private_method_the_adapter_uses_is_still_there_with_its_parameters(owner, name):
    method = inspect.getattr_static(owner, name, None)
    assert callable(method), f"{owner.__module__}.{owner.__qualname__}.{name} is gone ({RELIES})"
    parameters = [
        (parameter.name, parameter.kind, parameter.default)
        for parameter in inspect.signature(method).parameters.values()
    ]
    assert parameters == PRIVATE_METHODS[owner, name], (
        f"{owner.__module__}.{owner.__qualname__}.{name} changed its parameters to "
        f"{inspect.signature(method)} ({RELIES})"
    )


@pytest.mark.parametrize("attribute", list(PRIVATE_ATTRIBUTES))
def test_each_private_attribute_the_adapter_uses_is_still_there(attribute):
    try:
        holds = PRIVATE_ATTRIBUTES[attribute]()
    except AttributeError as error:
        pytest.fail(f"{attribute} is gone ({RELIES}): {error}")
    assert holds, f"{attribute} changed what it holds ({RELIES})"


@pytest.mark.parametrize(
    ("owner", "name"),
    [(owner, name) for owner, names in ADAPTER_NAMES.items() for name in sorted(names)],
)
def test_no_library_method_shares_a_name_with_an_adapter_hook(owner, name):
    assert not hasattr(owner, name), (
        f"{owner.__module__}.{owner.__qualname__}.{name} exists now: the adapter's "
        f"hook of that name overrides it; rename the hook"
    )


def test_a_jobs_copied_state_leaves_out_its_scheduler_and_store_alias():
    """submit_once copies a job through its state, then sets those two itself."""
    scheduler = BackgroundScheduler(jobstores={"default": MemoryJobStore()}, timezone=UTC)
    scheduler.start(paused=True)
    try:
        job = scheduler.add_job(record, "interval", hours=1, id="copied")
        state = job.__getstate__()
        assert state["version"] == 1, "Job.__getstate__ has a new version"
        assert {"kwargs", "misfire_grace_time", "executor"} <= set(state)
        copy = Job.__new__(Job)
        copy.__setstate__(state)
        for name in ("_scheduler", "_jobstore_alias"):
            assert not hasattr(copy, name), f"Job.__setstate__ sets {name} now"
    finally:
        scheduler.shutdown(wait=False)


RECORDED = []


def record(**kwargs):
    RECORDED.append((threading.current_thread().name, kwargs))
    return "recorded"


class RecordingScheduler(HookedBackgroundScheduler):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.passes = 0
        self.ended_in = None

    def process_due_jobs(self):
        self.passes += 1
        return super().process_due_jobs()

    def thread_ended(self):
        self.ended_in = threading.current_thread().name


class GatedExecutor(HookedExecutor):
    """Runs each job in a thread that waits for `gate`."""

    def __init__(self):
        super().__init__()
        self.gate = threading.Event()
        self.threads = []

    def start_run(self, job, run_times):
        def run():
            self.gate.wait(5)
            self.run_and_report(job, run_times)

        thread = threading.Thread(target=run, name="gated run")
        self.threads.append(thread)
        thread.start()


def test_apscheduler_calls_the_schedulers_hooks_in_its_own_thread():
    scheduler = RecordingScheduler(jobstores={"default": MemoryJobStore()}, timezone=UTC)
    scheduler.start()
    wait_until(lambda: scheduler.passes, timeout=5, message="_process_jobs was not called")
    scheduler.shutdown(wait=True)
    assert scheduler.ended_in == "APScheduler", "_main_loop is no longer the thread's target"
    assert scheduler.jobstores_lock.acquire(blocking=False)
    scheduler.jobstores_lock.release()


def test_a_job_submitted_once_runs_through_the_executor_and_reports_its_events():
    RECORDED.clear()
    executor = GatedExecutor()
    scheduler = HookedBackgroundScheduler(
        jobstores={"default": MemoryJobStore()},
        executors={"default": executor},
        timezone=UTC,
    )
    events = []
    scheduler.add_listener(events.append, EVENT_JOB_EXECUTED)
    scheduler.start(paused=True)
    try:
        scheduler.add_job(record, "interval", hours=1, id="once", max_instances=1)
        job = scheduler.get_job("once")
        fire = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
        assert scheduler.lookup_executor("default") is executor
        assert [type(store) for store in scheduler.job_stores()] == [MemoryJobStore]

        assert scheduler.submit_once(job, fire, value=1)
        assert executor.has_running_jobs(), "BaseExecutor._instances no longer counts runs"
        assert not scheduler.submit_once(job, fire), "max_instances no longer counted"
        executor.gate.set()
        executor.threads[0].join(5)

        assert RECORDED == [("gated run", {"value": 1})]
        assert not executor.has_running_jobs(), "_run_job_success no longer counts a run done"
        assert [(event.job_id, event.jobstore, event.scheduled_run_time) for event in events] == [
            ("once", "default", fire)
        ]
        assert scheduler.get_job("once").next_run_time == job.next_run_time
    finally:
        scheduler.shutdown(wait=False)


def test_django_apscheduler_loads_every_read_through_load_jobs():
    class RecordingStore(HookedDjangoJobStore):
        loads = []

        def load_jobs(self, **filters):
            self.loads.append(filters)
            return []

    scheduler = BackgroundScheduler(jobstores={"default": MemoryJobStore()}, timezone=UTC)
    scheduler.start(paused=True)
    try:
        job = scheduler.add_job(record, "interval", hours=1, id="stored")
        store = RecordingStore()
        store.start(scheduler, "stored")
        assert store.get_due_jobs(datetime(2026, 1, 1, tzinfo=UTC)) == []
        assert store.get_all_jobs() == []
        assert [set(filters) for filters in RecordingStore.loads] == [{"next_run_time__lte"}, set()]

        loaded = store.job_from_state(pickle.dumps(job.__getstate__()))
        assert (loaded.id, repr(loaded.trigger)) == ("stored", repr(job.trigger))
        assert (loaded._scheduler, loaded._jobstore_alias) == (scheduler, "stored")
    finally:
        scheduler.shutdown(wait=False)


def _library_private_names() -> set[str]:
    """Every single-underscore name the two libraries' code defines or sets on
    its own objects (methods, class attributes, slots, `self._x` attributes)."""
    names = set()
    for package in (apscheduler, django_apscheduler):
        for path in Path(package.__path__[0]).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ClassDef):
                    names.update(_defined_in(node))
                elif (
                    isinstance(node, ast.Attribute)
                    and isinstance(node.value, ast.Name)
                    and node.value.id == "self"
                ):
                    names.add(node.attr)
    private = {name for name in names if name.startswith("_") and not name.startswith("__")}
    return private - OWN_NAMES


def _defined_in(cls: ast.ClassDef):
    for item in cls.body:
        if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
            yield item.name
        elif isinstance(item, ast.Assign | ast.AnnAssign):
            targets = item.targets if isinstance(item, ast.Assign) else [item.target]
            names = [target.id for target in targets if isinstance(target, ast.Name)]
            yield from names
            if "__slots__" in names:
                for element in ast.walk(item.value):
                    if isinstance(element, ast.Constant) and isinstance(element.value, str):
                        yield element.value


def _uses(path: Path, forbidden: set[str]):
    """(line, name) of each attribute, method override or getattr-style string
    in `path` that is one of `forbidden`."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in forbidden:
            yield node.lineno, node.attr
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                is_method = isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)
                if is_method and item.name in forbidden:
                    yield item.lineno, item.name
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in {"getattr", "setattr", "hasattr", "delattr"}
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and node.args[1].value in forbidden
        ):
            yield node.lineno, node.args[1].value


def test_the_private_names_the_adapter_uses_are_those_checked_here():
    used = {name for _, name in _uses(ADAPTER, _library_private_names() | PRIVATE_NAMES)}
    assert used == PRIVATE_NAMES


def test_no_other_module_in_crm_uses_a_private_name_of_apscheduler_or_django_apscheduler():
    forbidden = _library_private_names() | (PRIVATE_NAMES - OWN_NAMES)
    found = [
        f"{path.relative_to(PROJECT_DIR)}:{line}: {name}"
        for path in sorted((PROJECT_DIR / "crm").rglob("*.py"))
        if path.resolve() != ADAPTER and "migrations" not in path.parts
        for line, name in _uses(path, forbidden)
    ]
    assert not found, (
        "APScheduler's or django-apscheduler's private names outside "
        "crm/scheduler/apscheduler_adapter.py: use (or add) a public name there instead; "
        "if it is an attribute of crm's own object, rename it or list it in OWN_NAMES:\n"
        + "\n".join(found)
    )
