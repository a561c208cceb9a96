"""Which processes start the scheduler: those marked as servers by an entry point,
and runserver's serving process; nothing else (tests/scheduler/test_process_rule.py
runs each kind of process for real)."""

import os

import pytest
from django.apps import apps

from crm.scheduler import startup
from crm.scheduler.startup import runserver_serves_here, wanted_in_this_process
from tests.support.processes import project_env, run_manage


@pytest.fixture
def not_serving(monkeypatch):
    monkeypatch.setenv(startup.SERVING_PID, "")  # put back as it was after the test
    monkeypatch.setattr(apps.get_app_config("crm"), "scheduler_runner", None)


MARKED = {startup.SERVING_PID: str(os.getpid())}  # by serve_with_scheduler()


@pytest.mark.parametrize(
    ("argv", "environ", "serves"),
    [
        (["manage.py", "runserver"], {}, False),  # the autoreloader's parent
        (["manage.py", "runserver"], {"RUN_MAIN": "true"}, True),  # its serving child
        (["manage.py", "runserver", "--noreload"], {}, True),
        (["/usr/lib/python3/site-packages/django/__main__.py", "runserver"], {}, False),
        (["/srv/.venv/bin/django-admin", "runserver", "--noreload"], {}, True),
        (["manage.py", "migrate"], {"RUN_MAIN": "true"}, False),  # started from a runserver
        (["manage.py", "shell"], {}, False),
        (["manage.py", "runscheduler"], {}, False),  # starts its own, in the foreground
        (["manage.py"], {}, False),
        ([], {}, False),
    ],
)
def test_runserver_serves_only_in_its_serving_process(argv, environ, serves):
    assert runserver_serves_here(argv, environ) is serves


@pytest.mark.parametrize(
    "argv",
    [
        ["/srv/.venv/bin/gunicorn", "config.wsgi"],
        ["/srv/.venv/lib/python3.11/site-packages/gunicorn/__main__.py", "config.wsgi"],
        ["Passenger AppPreloader: /srv/crm"],
        ["-c"],  # python -c "...; django.setup()"
        ["/srv/.venv/bin/pytest"],
    ],
)
def test_only_a_process_marked_as_a_server_wants_one(settings, not_serving, argv):
    settings.ENABLE_SCHEDULER = True
    assert not wanted_in_this_process(argv, {})
    # Inherited from a server that started this process: not a server itself.
    assert not wanted_in_this_process(argv, {startup.SERVING_PID: str(os.getppid())})

    assert wanted_in_this_process(argv, MARKED)


def test_enable_scheduler_off_stops_it_everywhere(settings, not_serving):
    settings.ENABLE_SCHEDULER = False
    assert not wanted_in_this_process(["manage.py", "runserver", "--noreload"], {})
    assert not wanted_in_this_process(["gunicorn"], MARKED)


class FakeRunner:
    started = 0

    def start(self):
        FakeRunner.started += 1


def test_an_entry_point_loaded_after_django_was_set_up_starts_it_at_once(
    settings, not_serving, monkeypatch
):
    """As in a gunicorn worker forked by `manage.py server web` (django-prodserver)."""
    from crm.scheduler import runner

    settings.ENABLE_SCHEDULER = True
    monkeypatch.setattr(runner, "SchedulerRunner", FakeRunner)
    monkeypatch.setattr(startup, "_release_lease_on_sigterm", lambda runner: None)
    FakeRunner.started = 0

    startup.serve_with_scheduler()
    startup.serve_with_scheduler()  # runserver's child: started in ready() already

    assert isinstance(startup.process_scheduler(), FakeRunner)
    assert FakeRunner.started == 1


def test_this_test_process_has_no_scheduler():
    assert startup.process_scheduler() is None
    assert not startup.serving(os.environ)


def test_management_commands_start_no_scheduler(tmp_path):
    env = project_env(
        SECRET_KEY="x",
        ENABLE_SCHEDULER="1",
        LOG_LEVEL="DEBUG",
        DATABASE_URL=f"sqlite:///{tmp_path}/db.sqlite3",
        LOG_DIR=str(tmp_path),
    )
    result = run_manage("migrate", "--noinput", env=env)

    assert result.returncode == 0, result.stderr
    assert "crm.scheduler" not in (tmp_path / "django.log").read_text()
