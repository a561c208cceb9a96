"""Which processes start the scheduler: web servers yes, runserver's autoreloader
parent and management commands no."""

import pytest

from crm.scheduler.startup import wanted_in_this_process
from tests.conftest import project_env, run_manage


@pytest.mark.parametrize(
    ("argv", "environ", "wanted"),
    [
        (["/srv/.venv/bin/gunicorn", "config.wsgi"], {}, True),
        (["Passenger AppPreloader: /srv/crm"], {}, True),
        (["manage.py", "runserver"], {}, False),  # the autoreloader's parent
        (["manage.py", "runserver"], {"RUN_MAIN": "true"}, True),  # its serving child
        (["manage.py", "runserver", "--noreload"], {}, True),
        (["/usr/lib/python3/site-packages/django/__main__.py", "runserver"], {}, False),
        (["manage.py", "migrate"], {}, False),
        (["manage.py", "shell"], {}, False),
        (["manage.py", "runscheduler"], {}, False),  # starts its own, in the foreground
        (["manage.py"], {}, False),
    ],
)
def test_it_starts_only_in_processes_that_serve(settings, argv, environ, wanted):
    settings.ENABLE_SCHEDULER = True
    assert wanted_in_this_process(argv, environ) is wanted


def test_enable_scheduler_off_stops_it_everywhere(settings):
    settings.ENABLE_SCHEDULER = False
    assert not wanted_in_this_process(["gunicorn"], {})
    assert not wanted_in_this_process(["manage.py", "runserver", "--noreload"], {})


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
