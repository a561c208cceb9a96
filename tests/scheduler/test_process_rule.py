"""Which processes start a scheduler, for real: each process that loads the app
through an entry point (config/wsgi.py, config/asgi.py, passenger_wsgi.py) and
runserver's serving process start one; `runscheduler` runs its own; nothing else
does. And a bad setting stops a server instead of failing worker after worker."""

import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.support.processes import (
    PROJECT_DIR,
    free_port,
    project_env,
    read_fires,
    start_group,
    stop_group,
    wait_until,
)

BIN = Path(sys.executable).parent
STARTED = re.compile(r"\[pid (\d+)\] scheduler standby started")
ACTIVE = re.compile(r"\[pid (\d+)\] scheduler active in this process")
# What Passenger's wsgi-loader.py does with the app root's passenger_wsgi.py.
PASSENGER_LOADER = """
import importlib.util, os, sys
sys.path.insert(0, os.getcwd())
spec = importlib.util.spec_from_file_location("passenger_wsgi", "passenger_wsgi.py")
app_module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(app_module)
from crm.scheduler import startup
serving = "serving" if startup.serving(os.environ) else "not serving"
print(serving, startup.process_scheduler() is not None, os.getpid())
"""
# Printed by the processes that must not start one: this process's runner.
PRINT_RUNNER = "from crm.scheduler import startup; print('runner:', startup.process_scheduler())"


def log_of(env) -> str:
    log = Path(env["LOG_DIR"]) / "django.log"
    return log.read_text() if log.exists() else ""


def pids(pattern: re.Pattern, env) -> list[int]:
    return [int(pid) for pid in pattern.findall(log_of(env))]


def parent_of(pid: int) -> int:
    # /proc/PID/stat: "pid (command) state ppid ..."; the command may hold spaces.
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def get(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            response.read()
            return response.status
    except OSError:
        return None


def run(command: list[str], env, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        command, cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=timeout
    )


def serve_until_a_scheduler_is_active(command, env, starting: int):
    """Start a server; once `starting` processes started a scheduler and one of
    them is active, return the server, their pids and the active one's."""
    server = start_group(command, env)
    try:
        wait_until(
            lambda: len(pids(STARTED, env)) >= starting and pids(ACTIVE, env),
            timeout=30,
            message=f"no {starting} scheduler(s) started, one active\n{log_of(env)}",
        )
        started = pids(STARTED, env)
        return server, started, pids(ACTIVE, env)[0], [parent_of(pid) for pid in started]
    except BaseException:
        print(stop_group(server))
        raise


@pytest.mark.e2e
@pytest.mark.parametrize(
    "gunicorn", [[str(BIN / "gunicorn")], [sys.executable, "-m", "gunicorn"]], ids=["bin", "-m"]
)
def test_gunicorn_starts_one_in_each_worker(app_env, gunicorn):
    port = free_port()
    command = [*gunicorn, "-w", "2", "-b", f"127.0.0.1:{port}", "config.wsgi"]
    server, started, active, parents = serve_until_a_scheduler_is_active(command, app_env, 2)
    try:
        assert get(f"http://127.0.0.1:{port}/admin/login/") == 200
    finally:
        stop_group(server)

    assert len(set(started)) == 2, started
    assert parents == [server.pid, server.pid], "each in a worker, none in the master"
    assert active in started
    assert len(pids(STARTED, app_env)) == 2


@pytest.mark.e2e
def test_prodserver_web_workers_start_one_each(app_env):
    """`manage.py server web`: gunicorn in the management command's own process,
    whose workers import config.wsgi after Django was set up."""
    port = free_port()
    env = {**app_env, "GUNICORN_BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": "2"}
    command = [sys.executable, "manage.py", "server", "web"]
    server, started, active, parents = serve_until_a_scheduler_is_active(command, env, 2)
    try:
        assert get(f"http://127.0.0.1:{port}/admin/login/") == 200
    finally:
        stop_group(server)

    assert len(set(started)) == 2 and parents == [server.pid, server.pid], started
    assert active in started


@pytest.mark.e2e
def test_uvicorn_serving_the_asgi_app_starts_one(app_env):
    port = free_port()
    command = [str(BIN / "uvicorn"), "--port", str(port), "config.asgi:application"]
    server, started, active, _ = serve_until_a_scheduler_is_active(command, app_env, 1)
    try:
        assert get(f"http://127.0.0.1:{port}/admin/login/") == 200
        wait_until(lambda: read_fires(Path(app_env["E2E_FIRE_LOG"])), timeout=10)
    finally:
        stop_group(server)

    assert started == [server.pid] and active == server.pid
    assert f"[pid {server.pid}] scheduler stopped" in log_of(app_env), "SIGTERM released it"


@pytest.mark.e2e
def test_runserver_noreload_starts_one_in_its_only_process(app_env):
    command = [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{free_port()}"]
    server, started, active, _ = serve_until_a_scheduler_is_active(command, app_env, 1)
    stop_group(server)

    assert started == [server.pid] and active == server.pid


@pytest.mark.e2e
def test_runscheduler_runs_its_own_and_starts_no_second_one(app_env):
    fire_log = Path(app_env["E2E_FIRE_LOG"])
    scheduler = start_group([sys.executable, "manage.py", "runscheduler"], app_env)
    try:
        wait_until(lambda: read_fires(fire_log), timeout=30, message=log_of(app_env))
    finally:
        stop_group(scheduler)

    assert pids(ACTIVE, app_env) == [scheduler.pid]
    assert pids(STARTED, app_env) == [], "CrmConfig.ready() started one beside it"
    assert {pid for _, pid in read_fires(fire_log)} == {scheduler.pid}


def test_passengers_loader_marks_the_process_as_a_server(app_env):
    loaded = run([sys.executable, "-c", PASSENGER_LOADER], app_env)

    assert loaded.returncode == 0, loaded.stderr
    serving, has_runner, pid = loaded.stdout.split()
    assert (serving, has_runner) == ("serving", "True")
    assert pids(STARTED, app_env) == [int(pid)]


@pytest.mark.parametrize(
    "command",
    [
        ["manage.py", "check"],
        ["manage.py", "shell", "-c", PRINT_RUNNER],
        [
            "-c",
            "import django, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'config.settings');"
            f" django.setup(); {PRINT_RUNNER}",
        ],
    ],
    ids=["check", "shell", "django.setup"],
)
def test_other_processes_start_none(app_env, command):
    finished = run([sys.executable, *command], app_env)

    assert finished.returncode == 0, finished.stderr
    assert "runner:" not in finished.stdout or "runner: None" in finished.stdout, finished.stdout
    # The log handler creates django.log at its first line (and LOG_DIR at once).
    assert Path(app_env["LOG_DIR"]).is_dir()
    assert "scheduler" not in log_of(app_env)


def test_pytest_starts_none(app_env, tmp_path):
    test_file = tmp_path / "test_inside.py"
    test_file.write_text(
        "from django.apps import apps\n"
        "from crm.scheduler import startup\n\n\n"
        "def test_no_runner():\n"
        "    assert apps.ready and startup.process_scheduler() is None\n"
    )
    env = {**app_env, "PYTHONPATH": str(PROJECT_DIR)}
    tested = run([str(BIN / "pytest"), "-q", "-p", "no:cacheprovider", str(test_file)], env)

    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "1 passed" in tested.stdout
    assert "scheduler" not in log_of(app_env)


BAD_SETTING = {"SECRET_KEY": "x", "DEBUG": "maybe"}


def assert_stopped_with_one_line(output: str, returncode: int) -> None:
    assert returncode != 0, output
    lines = [line for line in output.splitlines() if line.startswith("Configuration error:")]
    assert lines and "DEBUG='maybe'" in lines[0], output
    assert "Traceback" not in output, output


def run_until_it_stops(command, env, timeout: float = 15) -> tuple[str, int]:
    """A server expected to stop by itself: its output and exit status."""
    server = start_group(command, env)
    try:
        server.wait(timeout=timeout)
    finally:
        output = stop_group(server)
    return output, server.returncode


@pytest.mark.e2e
@pytest.mark.parametrize(
    "command",
    [
        [str(BIN / "gunicorn"), "-c", "deploy/gunicorn.conf.py"],
        [str(BIN / "gunicorn"), "config.wsgi"],
        [sys.executable, "-m", "gunicorn", "config.wsgi"],
    ],
    ids=["gunicorn.conf.py", "gunicorn config.wsgi", "python -m gunicorn"],
)
def test_a_bad_setting_stops_gunicorn(tmp_path, command):
    port = free_port()
    env = project_env(**BAD_SETTING, LOG_DIR=str(tmp_path), GUNICORN_BIND=f"127.0.0.1:{port}")
    if "-c" not in command:
        command = [*command, "-b", f"127.0.0.1:{port}"]
    output, returncode = run_until_it_stops(command, env)

    assert_stopped_with_one_line(output, returncode)
    assert output.count("Booting worker") <= 2, output


@pytest.mark.e2e
def test_a_bad_setting_stops_gunicorn_with_several_workers(tmp_path):
    """Each worker exits with 3, and gunicorn stops at the first. It prints a
    traceback of its own (HaltServer) when a second one exits while it stops:
    deploy/gunicorn.conf.py avoids that by checking the settings before any worker."""
    port = free_port()
    env = project_env(**BAD_SETTING, LOG_DIR=str(tmp_path))
    command = [str(BIN / "gunicorn"), "-w", "3", "-b", f"127.0.0.1:{port}", "config.wsgi"]
    output, returncode = run_until_it_stops(command, env)

    assert returncode != 0, output
    assert "Configuration error: DEBUG='maybe'" in output
    assert "config/settings.py" not in output and "ConfigurationError" not in output, output
    assert output.count("Booting worker") <= 3 + 2, output


def test_a_bad_setting_stops_passengers_loader(tmp_path):
    env = project_env(**BAD_SETTING, LOG_DIR=str(tmp_path))
    loaded = run([sys.executable, "-c", PASSENGER_LOADER], env)

    assert loaded.returncode == 3
    lines = loaded.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Configuration error: DEBUG='maybe'"), lines


@pytest.mark.e2e
def test_a_bad_setting_stops_uvicorn(tmp_path):
    env = project_env(**BAD_SETTING, LOG_DIR=str(tmp_path))
    command = [str(BIN / "uvicorn"), "--port", str(free_port()), "config.asgi:application"]
    output, returncode = run_until_it_stops(command, env)

    assert_stopped_with_one_line(output, returncode)


def test_manage_py_still_exits_1_on_a_bad_setting(tmp_path):
    env = project_env(**BAD_SETTING, LOG_DIR=str(tmp_path))
    checked = run([sys.executable, "manage.py", "check"], env)

    assert checked.returncode == 1
    assert checked.stderr.startswith("Configuration error: DEBUG='maybe'")
    assert len(checked.stderr.strip().splitlines()) == 1, checked.stderr


@pytest.mark.e2e
def test_web_workers_with_the_scheduler_off_still_mail_that_none_runs(app_env, tmp_path):
    """ENABLE_SCHEDULER=0 leaves the jobs to `runscheduler`; when that is dead,
    the web processes still tell ADMINS, once."""
    output = tmp_path / "gunicorn.out"
    env = {
        **app_env,
        "ENABLE_SCHEDULER": "0",
        "ADMINS": "ops@example.com",
        "EMAIL_BACKEND": "django.core.mail.backends.console.EmailBackend",
        "SCHEDULER_ALERT_CHECK_SECONDS": "1",
    }
    # A runscheduler that died two minutes ago.
    dead = (
        "from datetime import timedelta; "
        "from crm.scheduler.lease import Lease, database_now_plus; "
        "from crm.scheduler.models import SchedulerLease; "
        "assert Lease('default', timedelta(seconds=3)).acquire(); "
        "SchedulerLease.objects.update(heartbeat_at=database_now_plus(-timedelta(minutes=2)), "
        "expires_at=database_now_plus(-timedelta(minutes=2)))"
    )
    assert run([sys.executable, "manage.py", "shell", "-c", dead], env).returncode == 0
    server = start_group(
        [str(BIN / "gunicorn"), "-w", "2", "-b", f"127.0.0.1:{free_port()}", "config.wsgi"],
        env,
        output=output,
    )
    try:
        try:
            wait_until(lambda: "Subject: " in output.read_text(), timeout=20)
        except AssertionError:
            raise AssertionError(f"no alert mailed\n{log_of(env)}") from None
        wait_until(lambda: log_of(env).count("watching for alerts") == 2, timeout=10)
        # A negative check: no event marks an alert check that finds nothing new,
        # so give both workers about three more checks in which none may mail.
        time.sleep(3)
    finally:
        stop_group(server)
    messages = output.read_text()

    assert messages.count("Subject: [CRM] No scheduler is running") == 1
    assert pids(STARTED, env) == []
