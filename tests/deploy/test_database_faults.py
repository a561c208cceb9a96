"""Real database faults under real app processes: the PostgreSQL or MariaDB
server of each test (tests/support/dbservers.py, its own loopback port) has the app's
connections cut, is restarted, stopped for 40 s, killed, or ends idle
connections after MariaDB's wait_timeout, while `runscheduler` or gunicorn
workers run a job. Every thread must reconnect by itself: fires resume within
seconds, a fire never runs twice (counted in the job's own fire log, not in
the app's history), the health endpoint answers 503 JSON while the database is
away, and no run is left "Started execution" once it answers again.

Run with `pytest -m faults` (the servers are private: DATABASE_URL plays no part).
"""

import json
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path

import pytest

from crm.scheduler.history import RUNNING, SUCCEEDED
from tests.support.processes import (
    E2E_LEASE_SECONDS,
    as_utc,
    assert_each_fire_ran_once,
    e2e_env,
    free_port,
    query,
    read_executions,
    read_fires,
    run_manage,
    start_group,
    stop_group,
    wait_until,
)

pytestmark = pytest.mark.faults

DATABASE = "crm"
JOB = "e2e_heartbeat"
SLOW_JOB = "e2e_every_45s"  # tests.support.e2e_faults_settings
SLOW_JOB_SECONDS = 45
GUNICORN = str(Path(sys.executable).parent / "gunicorn")
RUNSCHEDULER = [sys.executable, "manage.py", "runscheduler"]
HEALTH = "/health/scheduler/"
TOKEN = "fault-injection-health-token-0123456789"
LEASE = E2E_LEASE_SECONDS


def now() -> datetime:
    return datetime.now(UTC)


class App:
    """The app's processes of one test, on a fresh database of its private server."""

    def __init__(self, tmp_path: Path, server, settings: str, overrides: dict[str, str]):
        self.tmp_path, self.server = tmp_path, server
        self.url = server.create_database(DATABASE)
        self.env = e2e_env(tmp_path, self.url, settings=settings, **overrides)
        self.fire_log = Path(self.env["E2E_FIRE_LOG"])
        self.django_log = Path(self.env["LOG_DIR"]) / "django.log"
        self.processes: dict[str, object] = {}
        self.port: int | None = None

    def start(self, name: str, command: list[str], **overrides: str):
        output = self.tmp_path / f"{name}.out"
        process = start_group(command, {**self.env, **overrides}, output=output)
        self.processes[name] = process
        return process

    def start_gunicorn(self, workers: int = 2, conf: bool = False):
        """gunicorn with `workers` workers, by plain arguments or by deploy/gunicorn.conf.py."""
        self.port = free_port()
        if conf:
            return self.start(
                "gunicorn",
                [GUNICORN, "-c", "deploy/gunicorn.conf.py"],
                GUNICORN_BIND=f"127.0.0.1:{self.port}",
                WEB_CONCURRENCY=str(workers),
            )
        command = [GUNICORN, "-w", str(workers), "-b", f"127.0.0.1:{self.port}", "config.wsgi"]
        return self.start("gunicorn", command)

    def stop_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                stop_group(process)

    def fire_times(self) -> list[datetime]:
        return sorted(fire for fire, _ in read_fires(self.fire_log))

    def fires_after(self, moment: datetime) -> list[datetime]:
        return [fire for fire in self.fire_times() if fire > moment]

    def log_lines(self, *words: str) -> list[str]:
        if not self.django_log.exists():
            return []
        lines = self.django_log.read_text(errors="replace").splitlines()
        return [line for line in lines if not words or any(word in line for word in words)]

    def evidence(self) -> str:
        """What to look at when something went wrong: the scheduler's log lines,
        the end of the fire log and of each process's output."""
        scheduler = self.log_lines(" crm.", " WARNING ", " ERROR ", "Traceback")
        parts = [
            f"--- django.log (scheduler, warnings, errors; last 60 of {len(scheduler)})",
            *scheduler[-60:],
            "--- fire log (last 15)",
            *(self.fire_log.read_text().splitlines()[-15:] if self.fire_log.exists() else []),
        ]
        for name in self.processes:
            output = (self.tmp_path / f"{name}.out").read_text(errors="replace").splitlines()
            parts += [f"--- {name} output (last 15)", *output[-15:]]
        return "\n".join(parts)

    def wait(self, condition, timeout: float, message: str, interval: float = 0.1):
        try:
            return wait_until(condition, timeout=timeout, interval=interval, message=message)
        except AssertionError as error:
            raise AssertionError(f"{error}\n{self.evidence()}") from None

    def stale_runs(self, older_than: float = 3) -> list[tuple]:
        """History rows still "Started execution" whose fire time is more than
        `older_than` seconds ago (a run of the every-second job takes milliseconds)."""
        rows = query(
            self.url,
            "SELECT job_id, run_time, status FROM django_apscheduler_djangojobexecution "
            f"WHERE status = '{RUNNING}'",
        )
        limit = now() - timedelta(seconds=older_than)
        return [row for row in rows if as_utc(row[1]) < limit]


@pytest.fixture(params=["postgres", "mariadb"])
def server(request):
    return request.getfixturevalue(f"private_{request.param}")


@pytest.fixture
def launch(tmp_path):
    """`launch(server, settings=..., **env)`: the app on a fresh database of
    `server`; its processes are stopped after the test (before the server)."""
    apps = []

    def launch(server, settings="tests.support.e2e_settings", **overrides: str) -> App:
        apps.append(App(tmp_path, server, settings, overrides))
        return apps[-1]

    yield launch
    for app in apps:
        app.stop_all()
        # Shown with the test's output when it failed.
        print(app.evidence())


def health(port: int, token: str | None = None):
    """(status, Content-Type, JSON body) of GET /health/scheduler/; None if no answer."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}{HEALTH}")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, headers, body = response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        status, headers, body = error.code, error.headers, error.read()
    except OSError:
        return None
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = body.decode(errors="replace")
    return status, headers.get("Content-Type"), parsed


def catch_up_runs(app: App, down: datetime, back: datetime) -> list[datetime]:
    """Runs whose fire time fell while the server was away."""
    return [fire for fire in app.fire_times() if down < fire < back]


def around(app: App, down: datetime, back: datetime) -> str:
    """The fires just before and after an outage, for the test's output."""
    fires = app.fire_times()
    before = [fire.strftime("%H:%M:%S.%f") for fire in fires if fire <= down][-2:]
    during = [fire.strftime("%H:%M:%S.%f") for fire in fires if down < fire < back]
    after = [fire.strftime("%H:%M:%S.%f") for fire in fires if fire >= back][:3]
    return (
        f"down {down:%H:%M:%S.%f}, back {back:%H:%M:%S.%f}; fires before {before}, "
        f"during {during}, after {after}"
    )


# 1. Connections cut by the server -------------------------------------------------


# CONN_MAX_AGE=0 (the default): the dispatch loop's connection stays open anyway;
# 600: every thread's connection stays open between queries, and all are cut.
@pytest.mark.parametrize("conn_max_age", ["0", "600"])
def test_fires_resume_within_5_s_each_time_the_server_ends_the_connections(
    server, launch, conn_max_age
):
    app = launch(server, CONN_MAX_AGE=conn_max_age)
    scheduler = app.start("runscheduler", RUNSCHEDULER)
    app.wait(lambda: len(app.fire_times()) >= 3, timeout=45, message="no fires before the cuts")

    for cut_number in range(1, 4):
        terminated = server.terminate_connections(DATABASE)
        cut = now()
        resumed = app.wait(
            lambda cut=cut: app.fires_after(cut),
            timeout=5,
            message=f"cut {cut_number}: no fire later than the cut within 5 s",
        )
        print(
            f"cut {cut_number}: {terminated} connection(s) ended; first fire after it "
            f"{(resumed[0] - cut).total_seconds():.2f} s later, "
            f"logged {(now() - cut).total_seconds():.2f} s after the cut"
        )
        assert terminated >= 1, "the cut ended none of the app's connections"
        time.sleep(1)  # the next cut hits the connections opened again

    app.wait(lambda: len(app.fires_after(cut)) >= 3, timeout=5, message="fires stopped again")
    assert scheduler.poll() is None, "runscheduler exited"
    fires = read_fires(app.fire_log)
    assert_each_fire_ran_once(fires)
    assert {pid for _, pid in fires} == {scheduler.pid}
    print("lease lost:", len(app.log_lines("lost its lease")), "time(s)")


# 2. Server restart ----------------------------------------------------------------


def test_fires_resume_within_10_s_of_a_restart_under_gunicorn(server, launch):
    app = launch(server)
    app.start_gunicorn(workers=2)
    app.wait(lambda: len(app.fire_times()) >= 3, timeout=45, message="no fires before restart")

    down = now()
    server.restart()
    back = now()
    resumed = app.wait(
        lambda: app.fires_after(back),
        timeout=10,
        message="no fire within 10 s of the server being back",
    )
    print(
        f"restart took {(back - down).total_seconds():.2f} s; first fire after it "
        f"logged {(now() - back).total_seconds():.2f} s after the server was back "
        f"(fire time +{(resumed[0] - back).total_seconds():.2f} s)"
    )
    app.wait(lambda: len(app.fires_after(back)) >= 5, timeout=10, message="fires stopped again")

    fires = read_fires(app.fire_log)
    assert_each_fire_ran_once(fires)
    assert len(catch_up_runs(app, down, back)) <= 1
    regular = app.fires_after(back)[-4:]
    assert {later - earlier for earlier, later in pairwise(regular)} == {timedelta(seconds=1)}


# 3. A 40-second outage ------------------------------------------------------------

OUTAGE_SECONDS = 40


def test_a_40_s_outage_health_status_catch_up_and_history(server, launch):
    app = launch(server, HEALTH_TOKEN=TOKEN)
    app.start_gunicorn(workers=2, conf=True)
    port = app.port
    app.wait(lambda: len(app.fire_times()) >= 3, timeout=45, message="no fires before outage")
    app.wait(
        lambda: (answer := health(port)) and answer[0] == 200,
        timeout=20,
        message="health not 200 before the outage",
    )

    server.stop()
    down = now()
    answers, monitor_answers, status = [], [], None
    while (now() - down).total_seconds() < OUTAGE_SECONDS:
        answers.append(health(port))
        monitor_answers.append(health(port, TOKEN))
        if status is None and (now() - down).total_seconds() > 10:
            status = run_manage("scheduler", "status", env={**app.env, "ENABLE_SCHEDULER": "0"})
        time.sleep(2)
    server.start()
    back = now()
    print(f"outage {(back - down).total_seconds():.1f} s; {len(answers)} health polls")

    # During the outage.
    assert answers and all(answer is not None for answer in answers), answers
    assert {answer[0] for answer in answers} == {503}, answers
    assert {answer[1] for answer in answers} == {"application/json"}, answers
    assert all(answer[2] == {"status": "unhealthy"} for answer in answers), answers
    for answer in monitor_answers:
        assert answer[0] == 503, answer
        assert answer[2]["status"] == "unhealthy", answer
        assert answer[2]["problems"][0].startswith("the database is unreachable"), answer
    print("monitor's answer during the outage:", monitor_answers[0][2])
    assert status is not None
    print(f"scheduler status during the outage: exit {status.returncode}: {status.stderr.strip()}")
    assert status.returncode != 0
    assert "The database is unreachable" in status.stderr, status.stderr
    assert "migrate" not in status.stdout + status.stderr

    # Back again.
    healthy = app.wait(
        lambda: (answer := health(port)) and answer[0] == 200 and answer,
        timeout=LEASE + 10 + 2,
        message=f"health not 200 within {LEASE + 10 + 2} s of the server being back",
        interval=0.25,
    )
    healthy_after = (now() - back).total_seconds()
    assert healthy[2] == {"status": "ok"}
    resumed = app.wait(
        lambda: app.fires_after(back),
        timeout=LEASE + 10,
        message=f"no fire within {LEASE + 10} s of the server being back",
    )
    print(
        f"health 200 {healthy_after:.2f} s after the server was back; first fire "
        f"{(resumed[0] - back).total_seconds():.2f} s after it"
    )
    app.wait(lambda: len(app.fires_after(back)) >= 4, timeout=10, message="fires stopped again")

    fires = read_fires(app.fire_log)
    assert_each_fire_ran_once(fires)
    caught_up = catch_up_runs(app, down, back)
    history = read_executions(app.url, JOB)
    in_outage = {fire: run.status for fire, run in history.items() if down < fire < back}
    print(around(app, down, back))
    print(f"history of fires inside the outage: {in_outage}")
    assert len(caught_up) <= 1, f"the outage's fires were not coalesced: {caught_up}"

    app.wait(
        lambda: not app.stale_runs(),
        timeout=max(1, 20 - (now() - back).total_seconds()),
        message="runs still 'Started execution' 20 s after the server came back",
        interval=0.5,
    )
    assert all(history[fire].status == SUCCEEDED for fire in caught_up)


# 4. MariaDB ends idle connections -------------------------------------------------


def idle_connections(server) -> list[tuple[int, int]]:
    """(id, seconds idle) of the app's connections sitting idle on the server."""
    rows = query(
        server.url(),
        "SELECT ID, TIME FROM information_schema.PROCESSLIST "
        f"WHERE DB = '{DATABASE}' AND COMMAND = 'Sleep'",
    )
    return [(int(row[0]), int(row[1])) for row in rows]


def ended_for_wait_timeout(server) -> int:
    """Connections the server ended after wait_timeout, by its log ("Got an error
    reading" is a client that went without saying goodbye)."""
    text = server.log_path.read_text(errors="replace")
    return sum(
        "Aborted connection" in line and "Got timeout reading communication packets" in line
        for line in text.splitlines()
    )


@pytest.mark.parametrize("private_mariadb", [{"wait_timeout": 20}], indirect=True)
def test_a_job_every_45_s_runs_every_fire_past_mariadbs_wait_timeout(private_mariadb, launch):
    server = private_mariadb
    assert query(server.url(), "SELECT @@GLOBAL.wait_timeout") == [(20,)]
    app = launch(server, settings="tests.support.e2e_faults_settings", CONN_MAX_AGE="600")
    app.start_gunicorn(workers=2)
    port = app.port
    # Requests leave each worker's own connection open (CONN_MAX_AGE), to idle
    # past wait_timeout until the next request.
    app.wait(
        lambda: (answer := health(port)) and answer[0] == 200,
        timeout=30,
        message="health not 200 at the start",
    )
    for _ in range(4):
        health(port)
    longest_idle, answers = 0, []

    def three_fires_in_a_row():
        nonlocal longest_idle
        longest_idle = max([longest_idle, *(idle for _, idle in idle_connections(server))])
        fires = app.fire_times()
        if len(answers) < len(fires):  # once after each fire, connections idle 20 s and more
            answers.append(health(port))
        return len(fires) >= 3

    app.wait(
        three_fires_in_a_row,
        timeout=3 * SLOW_JOB_SECONDS + 45,
        message="three fires of the 45-s job did not run",
        interval=1,
    )
    fires = app.fire_times()
    timed_out = ended_for_wait_timeout(server)
    gone_away = app.log_lines("gone away", "Lost connection")
    print(
        f"fires {[fire.strftime('%H:%M:%S') for fire in fires]}; longest idle app "
        f"connection seen {longest_idle} s; ended by the server after wait_timeout: "
        f"{timed_out}; 'gone away' log lines: {len(gone_away)}; health after each fire: "
        f"{[answer and answer[0] for answer in answers]}"
    )
    for line in gone_away[:10]:
        print("  ", line)

    assert timed_out >= 1, "no connection idled past wait_timeout: the test proved nothing"
    assert_each_fire_ran_once(read_fires(app.fire_log))
    assert {later - earlier for earlier, later in pairwise(fires)} == {
        timedelta(seconds=SLOW_JOB_SECONDS)
    }, f"a fire is missing: {fires}"
    history = read_executions(app.url, SLOW_JOB)
    assert all(history[fire].status == SUCCEEDED for fire in fires), history
    not_started = app.log_lines("not started, the database did not answer")
    assert not not_started, not_started
    assert [answer and answer[0] for answer in answers] == [200] * len(answers), answers


# 5. Server killed -----------------------------------------------------------------


def test_fires_resume_after_the_server_is_killed_and_started_5_s_later(server, launch):
    app = launch(server)
    scheduler = app.start("runscheduler", RUNSCHEDULER)
    app.wait(lambda: len(app.fire_times()) >= 3, timeout=45, message="no fires before the kill")

    server.kill()
    down = now()
    time.sleep(5)
    server.start()
    back = now()
    resumed = app.wait(
        lambda: app.fires_after(back),
        timeout=LEASE + 10,
        message=f"no fire within {LEASE + 10} s of the killed server being back",
    )
    print(
        f"down {(back - down).total_seconds():.1f} s (start took "
        f"{server.last_start_seconds:.1f} s); first fire after it "
        f"{(resumed[0] - back).total_seconds():.2f} s later"
    )
    app.wait(lambda: len(app.fires_after(back)) >= 4, timeout=10, message="fires stopped again")
    assert scheduler.poll() is None, "runscheduler exited"

    assert_each_fire_ran_once(read_fires(app.fire_log))
    caught_up = catch_up_runs(app, down, back)
    assert len(caught_up) <= 1, f"the outage's fires were not coalesced: {caught_up}"
    app.wait(
        lambda: not app.stale_runs(),
        timeout=max(1, 20 - (now() - back).total_seconds()),
        message="runs still 'Started execution' 20 s after the server came back",
        interval=0.5,
    )
    history = {
        fire.strftime("%H:%M:%S.%f"): run.status
        for fire, run in read_executions(app.url, JOB).items()
        if down - timedelta(seconds=2) < fire < back + timedelta(seconds=1)
    }
    print(around(app, down, back))
    print("history of the fires around the kill:", history)
