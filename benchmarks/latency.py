"""Request latency while a job runs: the admin ticket list under a steady load
(CLIENTS loopback clients, each sending its next request when the last one is
answered) on a real gunicorn (2 workers) whose active scheduler runs
auto_close_resolved_tickets over 500,000 due tickets, against the same load on
a gunicorn with the scheduler off. Both servers run side by side; the windows
alternate, and the tickets are made due again before each round."""

import statistics
import tempfile
import threading
import time
import urllib.request
from contextlib import ExitStack, contextmanager
from datetime import timedelta
from http.cookiejar import CookieJar
from pathlib import Path
from urllib.parse import urlencode

from django.db import connection
from django.utils import timezone
from django_apscheduler.models import DjangoJob

from benchmarks.data import insert_tickets
from benchmarks.database import child_env
from benchmarks.processes import MANAGE, free_port, running, wait_for
from benchmarks.report import Figure
from crm.scheduler import control
from crm.scheduler.lease import LEASE_NAME, current_holder

TICKETS = 500_000
ROUNDS = 3
CLIENTS = 2
OFF_SECONDS = 15  # each window with the scheduler off
JOB = "auto_close_resolved_tickets"
PAGE = "/admin/crm/ticket/"
USER, PASSWORD = "bench", "bench-password"


def run(sizes: list[int]) -> list[Figure]:
    clear_tickets()
    insert_tickets(TICKETS, TICKETS, resolved_from=timezone.now() - timedelta(days=10))
    with tempfile.TemporaryDirectory(prefix="bench-latency-") as tmp, ExitStack() as stack:
        env = child_env(
            LOG_DIR=tmp,
            ALLOWED_HOSTS="127.0.0.1",
            SECURE_SSL_REDIRECT="0",
            SESSION_COOKIE_SECURE="0",
            CSRF_COOKIE_SECURE="0",
            SCHEDULER_SHUTDOWN_WAIT_SECONDS="2",
            DJANGO_SUPERUSER_PASSWORD=PASSWORD,
        )
        create_superuser(env, Path(tmp))
        off = stack.enter_context(gunicorn({**env, "ENABLE_SCHEDULER": "0"}, Path(tmp, "off.out")))
        on = stack.enter_context(gunicorn({**env, "ENABLE_SCHEDULER": "1"}, Path(tmp, "on.out")))
        wait_for(lambda: active_with(JOB), timeout=60, output=Path(tmp, "on.out"))
        cookie = log_in(off)
        for base in (off, on):  # each worker's first answers are slower
            with load(base + PAGE, cookie, [], []):
                time.sleep(1)
        results = {"off": ([], []), "on": ([], [])}
        for number in range(ROUNDS):
            if number:
                reopen_tickets()
            with load(off + PAGE, cookie, *results["off"]):
                time.sleep(OFF_SECONDS)
            command = control.run_now(JOB, "benchmark", wait=0)
            wait_for_command(command, lambda c: c.taken_at, timeout=60)
            with load(on + PAGE, cookie, *results["on"]):
                command = wait_for_command(command, lambda c: c.finished_at, timeout=600)
            if not command.succeeded:
                raise RuntimeError(f"{JOB} failed in the active scheduler: {command.outcome}")
        locked = sum(path.read_text().count("database is locked") for path in Path(tmp).glob("*"))
    return figures(results, locked)


def figures(results: dict, locked: int) -> list[Figure]:
    (on, on_errors), (off, off_errors) = results["on"], results["off"]
    counts = f"{len(on)} and {len(off)} requests"
    p99_on, p99_off = (statistics.quantiles(ms, n=100)[98] for ms in (on, off))
    errors = len(on_errors) + len(off_errors) + locked
    return [
        Figure(
            benchmark="latency",
            measure=f"admin ticket list p50 while {JOB} closes {TICKETS:,} tickets ({counts})",
            ours=statistics.median(on),
            unit="ms",
            reference=statistics.median(off),
            reference_name="scheduler off",
        ),
        Figure(
            benchmark="latency",
            measure=f"admin ticket list p99 while {JOB} closes {TICKETS:,} tickets ({counts})",
            ours=p99_on,
            unit="ms",
            reference=p99_off,
            reference_name="scheduler off",
            target="≤ 1.3x scheduler off",
            met=p99_on <= 1.3 * p99_off,
        ),
        Figure(
            benchmark="latency",
            measure="failed requests and 'database is locked' in the servers' logs",
            ours=errors,
            unit="errors",
            target="0",
            met=errors == 0,
        ),
    ]


def create_superuser(env: dict[str, str], tmp: Path) -> None:
    output = tmp / "createsuperuser.out"
    command = [*MANAGE, "createsuperuser", "--noinput", "--username", USER, "--email", "b@x.test"]
    with running(command, env, output) as process:
        process.wait(timeout=60)
    if process.returncode != 0:
        raise RuntimeError(f"createsuperuser failed: {output.read_text()}")


@contextmanager
def gunicorn(env: dict[str, str], output: Path):
    """A real gunicorn with 2 workers on 127.0.0.1; yields its base URL once it answers."""
    base = f"http://127.0.0.1:{free_port()}"
    command = [str(Path(MANAGE[0]).parent / "gunicorn"), "-w", "2", "-b", base[7:], "config.wsgi"]
    with running(command, env, output):
        wait_for(lambda: fetch(base + "/admin/login/") == 200, timeout=60, output=output)
        yield base


def fetch(url: str, cookie: str = "") -> int | None:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers={"Cookie": cookie})) as r:
            r.read()
            return r.status
    except OSError:
        return None


def active_with(job_id: str) -> bool:
    return current_holder(LEASE_NAME) is not None and DjangoJob.objects.filter(id=job_id).exists()


def log_in(base: str) -> str:
    """Through the admin's login form, as a browser does; returns the Cookie header."""
    jar = CookieJar()
    browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    browser.open(base + "/admin/login/").read()
    token = next(cookie.value for cookie in jar if cookie.name == "csrftoken")
    form = {"csrfmiddlewaretoken": token, "username": USER, "password": PASSWORD, "next": PAGE}
    browser.open(base + "/admin/login/", urlencode(form).encode()).read()
    cookie = "; ".join(f"{c.name}={c.value}" for c in jar)
    if "sessionid=" not in cookie or fetch(base + PAGE, cookie) != 200:
        raise RuntimeError(f"could not log in to {base}/admin/ as {USER}")
    return cookie


@contextmanager
def load(url: str, cookie: str, latencies: list[float], errors: list[str]):
    """CLIENTS threads requesting `url` back to back until the block ends;
    appends each answer's latency (ms) or failure."""
    stop = threading.Event()

    def client():
        while not stop.is_set():
            started = time.perf_counter()
            status = fetch(url, cookie)
            if status == 200:
                latencies.append((time.perf_counter() - started) * 1000)
            else:
                errors.append(f"{url}: {status}")

    threads = [threading.Thread(target=client, daemon=True) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    try:
        yield
    finally:
        stop.set()
        for thread in threads:
            thread.join()


def wait_for_command(command, done, timeout: float):
    """`command` (a run handed to the active scheduler, as `manage.py scheduler
    run` does) once `done(command)`."""
    deadline = time.monotonic() + timeout
    while not done(command):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{command} not finished within {timeout} s")
        time.sleep(0.2)
        command.refresh_from_db()
    return command


def reopen_tickets() -> None:
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM crm_ticketevent")
        cursor.execute(
            "UPDATE crm_ticket SET status = 'resolved', closed_at = NULL WHERE status = 'closed'"
        )


def clear_tickets() -> None:
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM crm_ticketevent")
        cursor.execute("DELETE FROM crm_ticket")
