"""Phusion Passenger: real Apache + mod_passenger, configured from the sample
deploy/passenger/apache.conf, serve the app from a pool of three processes with
the scheduler on in each. A job that fires every second runs each fire exactly
once across the pool, and again across a `touch tmp/restart.txt`.

Passenger runs the app as an unprivileged user, so the app is deployed as a
shared host would have it: a copy of the project in a directory that user owns,
with its own `.venv` (built from Debian's Python, cached under /tmp), `.env`,
`migrate` and `collectstatic`. Debian's Passenger 6.0.17 loader imports `imp`,
hence Debian's Python 3.11 rather than the Python running this test.
"""

import concurrent.futures
import contextlib
import fcntl
import hashlib
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.support.processes import (
    PROJECT_DIR,
    activated_at,
    assert_each_fire_ran_once,
    free_port,
    read_fire_lines,
    wait_until,
)

pytestmark = pytest.mark.e2e

APT_PACKAGES = "apache2 libapache2-mod-passenger python3-venv"
APACHE = Path("/usr/sbin/apache2")
APACHE_MODULES = Path("/usr/lib/apache2/modules")
PASSENGER_ROOT = Path("/usr/lib/ruby/vendor_ruby/phusion_passenger/locations.ini")
WSGI_LOADER = "/usr/share/passenger/helper-scripts/wsgi-loader.py"
SYSTEM_PYTHON = Path("/usr/bin/python3")
CACHE_DIR = Path(tempfile.gettempdir()) / "crm-passenger-cache"
SAMPLE_CONFIG = PROJECT_DIR / "deploy" / "passenger" / "apache.conf"
APP_USER = "www-data"
POOL_SIZE = 3
# Between the other end-to-end tests' 3 s and the default 30 s: the takeover after
# a restart includes Passenger spawning new processes, which is slow on a busy machine.
LEASE_SECONDS = 10
OBSERVED_SECONDS = 30
# What a deployment uploads: the code, not the developer's database, logs or venv.
APP_FILES = ("config", "crm", "templates", "tests", "manage.py", "passenger_wsgi.py")


def require_apache_and_passenger() -> None:
    """Fail (never skip) with what to install: this test is the proof that the
    Passenger deployment works, so CI must not pass without running it."""
    needed = {
        APACHE: "apache2",
        APACHE_MODULES / "mod_passenger.so": "libapache2-mod-passenger",
        PASSENGER_ROOT: "libapache2-mod-passenger",
        Path(WSGI_LOADER): "libapache2-mod-passenger",
        SYSTEM_PYTHON: "python3",
    }
    missing = sorted({package for path, package in needed.items() if not path.exists()})
    ensurepip = subprocess.run(
        [str(SYSTEM_PYTHON), "-c", "import ensurepip, venv"], capture_output=True, check=False
    )
    if ensurepip.returncode != 0:
        missing.append("python3-venv")
    if missing:
        pytest.fail(
            f"Apache with mod_passenger is needed (missing: {', '.join(missing)}). "
            f"Install: apt-get update && apt-get install -y {APT_PACKAGES}",
            pytrace=False,
        )
    loader_imports_imp = " imp," in Path(WSGI_LOADER).read_text()
    python_version = subprocess.run(
        [str(SYSTEM_PYTHON), "-c", "import sys; print(sys.version_info >= (3, 12))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if loader_imports_imp and python_version.strip() == "True":
        pytest.fail(
            f"This Passenger's {WSGI_LOADER} imports `imp`, which {SYSTEM_PYTHON} "
            "(3.12 or newer) does not have: use a system with Python 3.11 or a newer Passenger.",
            pytrace=False,
        )
    if os.geteuid() != 0:
        pytest.fail("This test runs Apache and switches users: run it as root.", pytrace=False)


def cached_venv() -> Path:
    """A virtualenv of requirements.txt on Debian's Python, readable by the app
    user, reused by later runs while requirements.txt and that Python stay the same."""
    version = subprocess.run(
        [str(SYSTEM_PYTHON), "-VV"], capture_output=True, text=True, check=True
    ).stdout
    requirements = (PROJECT_DIR / "requirements.txt").read_bytes()
    key = hashlib.sha256(version.encode() + requirements).hexdigest()[:16]
    venv = private_cache_dir() / f"venv-{key}"
    with open(f"{venv}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another run may be building it right now
        if not (venv / ".complete").exists():
            shutil.rmtree(venv, ignore_errors=True)
            for command in (
                [str(SYSTEM_PYTHON), "-m", "venv", str(venv)],
                [f"{venv}/bin/python", "-m", "pip", "install", "--quiet",
                 "--disable-pip-version-check", "-r", str(PROJECT_DIR / "requirements.txt")],
            ):  # fmt: skip
                built = subprocess.run(command, capture_output=True, text=True, timeout=600)
                assert built.returncode == 0, f"{command}: {built.stdout}{built.stderr}"
            (venv / ".complete").touch()
    return venv


def private_cache_dir() -> Path:
    """/tmp is shared: the cache lives in a directory that only root can write."""
    CACHE_DIR.mkdir(mode=0o755, exist_ok=True)
    info = CACHE_DIR.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != 0 or info.st_mode & 0o022:
        pytest.fail(f"{CACHE_DIR} is not a directory that only root can write; remove it.")
    return CACHE_DIR


def deploy_app(app: Path, venv: Path, database_url: str) -> dict[str, str]:
    """The app root as the deployment guide has it; returns the secrets in its .env."""
    app.mkdir()
    for name in APP_FILES:
        source = PROJECT_DIR / name
        if source.is_dir():
            shutil.copytree(source, app / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, app / name)
    (app / ".venv").symlink_to(venv)
    for directory in ("tmp", "public", "logs"):
        (app / directory).mkdir()
    tokens = {"SCHEDULER_WAKE_TOKEN": secrets.token_urlsafe(32)}
    settings = {
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1",
        "DATABASE_URL": database_url,
        "SECURE_SSL_REDIRECT": "0",  # plain HTTP on the loopback
        "SCHEDULER_LEASE_SECONDS": str(LEASE_SECONDS),
        "SCHEDULER_SHUTDOWN_WAIT_SECONDS": "2",
        **tokens,
    }
    (app / ".env").write_text("".join(f"{name}={value}\n" for name, value in settings.items()))
    user = pwd.getpwnam(APP_USER)
    for root, directories, files in os.walk(app):
        for name in [root, *(os.path.join(root, entry) for entry in directories + files)]:
            os.lchown(name, user.pw_uid, user.pw_gid)
    return tokens


def manage_as_app_user(app: Path, *args: str) -> None:
    """`.venv/bin/python manage.py ...` in the app root, as the user Passenger runs it as."""
    result = subprocess.run(
        [".venv/bin/python", "manage.py", *args],
        cwd=app,
        env={
            "PATH": "/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "DJANGO_SETTINGS_MODULE": "tests.support.e2e_settings",
            "ENABLE_SCHEDULER": "0",
        },
        user=APP_USER,
        group=APP_USER,
        extra_groups=[],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"manage.py {' '.join(args)}: {result.stdout}{result.stderr}"


def apache_config(run_dir: Path, registry: Path, app: Path, port: int) -> str:
    """The sample apache.conf with this machine's paths and port, after the
    server-wide lines a packaged Apache keeps in apache2.conf."""
    site = SAMPLE_CONFIG.read_text()
    for directive in (f"PassengerMinInstances {POOL_SIZE}", f"PassengerMaxPoolSize {POOL_SIZE}"):
        assert directive in site, f"{SAMPLE_CONFIG} should keep {directive!r}"
    replacements = {
        "/home/crm/crm": str(app),
        "<VirtualHost *:80>": f"<VirtualHost 127.0.0.1:{port}>",
        "crm.example.com": f"127.0.0.1:{port}",
        "PassengerUser crm": f"PassengerUser {APP_USER}",
        "PassengerGroup crm": f"PassengerGroup {APP_USER}",
        # So that the restart is noticed on the first request a second later.
        "PassengerStatThrottleRate 10": "PassengerStatThrottleRate 1",
        "</VirtualHost>": (
            "    SetEnv DJANGO_SETTINGS_MODULE tests.support.e2e_settings\n"
            f"    SetEnv E2E_FIRE_LOG {app}/logs/fires.log\n"
            "</VirtualHost>"
        ),
    }
    for old, new in replacements.items():
        assert old in site, f"{SAMPLE_CONFIG} no longer contains {old!r}; update this test"
        site = site.replace(old, new)
    modules = {
        "mpm_event_module": "mod_mpm_event.so",
        "authz_core_module": "mod_authz_core.so",
        "env_module": "mod_env.so",
        "mime_module": "mod_mime.so",
        "passenger_module": "mod_passenger.so",
    }
    server = [
        "ServerRoot /etc/apache2",
        "ServerName 127.0.0.1",
        f"Listen 127.0.0.1:{port}",
        f"PidFile {run_dir}/apache2.pid",
        f"DefaultRuntimeDir {run_dir}",
        f"Mutex file:{run_dir} default",
        f"ErrorLog {run_dir}/error.log",
        "LogLevel warn",
        f"User {APP_USER}",
        f"Group {APP_USER}",
        "TypesConfig /etc/mime.types",
        *(f"LoadModule {name} {APACHE_MODULES / file}" for name, file in modules.items()),
        f"PassengerRoot {PASSENGER_ROOT}",
        "PassengerDefaultRuby /usr/bin/ruby",
        # Apache's workers (the app user) connect to Passenger's sockets in here.
        f"PassengerInstanceRegistryDir {registry}",
        f"PassengerLogFile {run_dir}/passenger.log",
        "PassengerDisableSecurityUpdateCheck on",
        "PassengerDisableAnonymousTelemetry on",
    ]
    return "\n".join(server) + "\n\n" + site


class Passenger:
    def __init__(self, app: Path, port: int, run_dir: Path, tokens: dict[str, str]):
        self.app, self.run_dir, self.tokens = app, run_dir, tokens
        self.url = f"http://127.0.0.1:{port}"
        self.fire_log = app / "logs" / "fires.log"
        self.django_log = app / "logs" / "django.log"

    def pool(self) -> set[int]:
        """Pids of this app's processes (Passenger starts them in the app root)."""
        pids = set()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                if (
                    os.readlink(entry / "cwd") == str(self.app)
                    and WSGI_LOADER in (entry / "cmdline").read_bytes().decode()
                ):
                    pids.add(int(entry.name))
        return pids

    def fetch(self, path: str, method: str = "GET", token: str = ""):
        request = urllib.request.Request(self.url + path, method=method)
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def wait(self, condition, timeout: float, what: str):
        """wait_until, with the end of the logs in the message if it times out."""
        try:
            return wait_until(condition, timeout=timeout, interval=0.5)
        except AssertionError:
            raise AssertionError(f"{what} within {timeout} s\n{self.logs()}") from None

    def logged(self, text: str) -> bool:
        return self.django_log.exists() and text in self.django_log.read_text()

    def logs(self) -> str:
        """What to show when something fails: the end of each log."""
        parts = []
        for log in (self.run_dir / "passenger.log", self.django_log):
            if log.exists():
                parts.append(f"--- {log.name}\n" + "\n".join(log.read_text().splitlines()[-40:]))
        return "\n".join(parts)


@pytest.fixture
def passenger(tmp_path, fresh_database_url):
    require_apache_and_passenger()
    venv = cached_venv()
    # The app user must reach the app and Passenger's sockets; pytest's temp
    # directories are private to root, so those two live in a directory of their own.
    shared = Path(tempfile.mkdtemp(prefix="crm-passenger-"))
    shared.chmod(0o711)
    app, registry = shared / "app", shared / "registry"
    database_url = (
        "sqlite:///db.sqlite3" if fresh_database_url.startswith("sqlite") else fresh_database_url
    )
    server, tokens = None, {}
    try:
        registry.mkdir(mode=0o755)
        tokens = deploy_app(app, venv, database_url)
        manage_as_app_user(app, "migrate", "--noinput")
        manage_as_app_user(app, "collectstatic", "--noinput")
        for attempt in range(1, APACHE_STARTS + 1):
            port = free_port()
            config = tmp_path / "apache2.conf"
            config.write_text(apache_config(tmp_path, registry, app, port))
            checked = subprocess.run([APACHE, "-t", "-f", config], capture_output=True, text=True)
            assert checked.returncode == 0, checked.stderr
            (tmp_path / "error.log").unlink(missing_ok=True)
            server = start_apache(config, tmp_path)
            wait_until(
                lambda port=port, server=server: listening(port) or server.poll() is not None,
                timeout=30,
                message="Apache does not listen",
            )
            if server.poll() is None:
                break
            error_log = tmp_path / "error.log"
            crashed = error_log.exists() and "corruption" in error_log.read_text()
            # Debian's Apache with mod_passenger now and then aborts as it
            # starts ("double free or corruption"), before any of the app is
            # loaded: start it again; anything else fails the test.
            assert crashed and attempt < APACHE_STARTS, (tmp_path / "apache2.out").read_text()
            server = None
        yield Passenger(app, port, tmp_path, tokens)
    finally:
        if server is not None:
            stop_apache(server, Passenger(app, 0, tmp_path, tokens))
        for log in app.glob("logs/*.log"):
            shutil.copy2(log, tmp_path / log.name)  # kept by pytest for a look after a failure
        shutil.rmtree(shared, ignore_errors=True)


APACHE_STARTS = 3


def start_apache(config: Path, run_dir: Path) -> subprocess.Popen:
    # A clean environment: the app reads its settings from .env and SetEnv only.
    with open(run_dir / "apache2.out", "w") as output:
        return subprocess.Popen(
            [APACHE, "-f", config, "-DFOREGROUND"],
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"},
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def stop_apache(server: subprocess.Popen, passenger: Passenger) -> None:
    """SIGTERM to Apache's pid; Passenger then stops the app processes, which
    release the lease on the way out. Anything left after a bounded wait is killed."""
    app_pids = passenger.pool()
    with contextlib.suppress(ProcessLookupError):
        os.kill(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.kill(server.pid, signal.SIGKILL)
        server.wait(timeout=10)
    with contextlib.suppress(AssertionError):
        wait_until(lambda: not passenger.pool(), timeout=20)
    for pid in app_pids | passenger.pool():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def spawn_whole_pool(passenger: Passenger) -> set[int]:
    """Concurrent requests until Passenger runs POOL_SIZE processes (it never runs more)."""

    def pool_is_full():
        with concurrent.futures.ThreadPoolExecutor(POOL_SIZE * 2) as requests:
            list(requests.map(lambda _: passenger.fetch("/admin/login/"), range(POOL_SIZE * 2)))
        pool = passenger.pool()
        assert len(pool) <= POOL_SIZE, f"more processes than PassengerMaxPoolSize: {pool}"
        return pool if len(pool) == POOL_SIZE else None

    return passenger.wait(pool_is_full, timeout=90, what=f"no {POOL_SIZE} processes")


def wait_for_lease_keepers(passenger: Passenger, pids: set[int]) -> None:
    """Until each process has loaded the app and started its lease keeper."""
    passenger.wait(
        lambda: all(passenger.logged(f"standby started (pid {pid})") for pid in pids),
        timeout=60,
        what="not every process started a lease keeper",
    )


def holder_pid(passenger: Passenger) -> int:
    """The active scheduler's pid, from the wake endpoint as a monitor calls it."""
    status, body = passenger.fetch(
        "/scheduler/wake/", method="POST", token=passenger.tokens["SCHEDULER_WAKE_TOKEN"]
    )
    assert status == 200, body
    return json.loads(body)["pid"]


def test_each_fire_runs_once_across_a_passenger_pool_and_a_restart(passenger):
    assert passenger.fetch("/admin/login/")[0] == 200, passenger.logs()
    first_pool = spawn_whole_pool(passenger)
    wait_for_lease_keepers(passenger, first_pool)
    pool_full_at = datetime.now(UTC)
    # Served by Apache from public/, where collectstatic put it.
    assert passenger.fetch("/static/admin/css/base.css")[0] == 200

    start = passenger.wait(
        lambda: min(
            (fire.time for fire in read_fire_lines(passenger.fire_log) if fire.time > pool_full_at),
            default=None,
        ),
        timeout=30,
        what="the job did not run",
    )
    end = start + timedelta(seconds=OBSERVED_SECONDS)
    wait_until(lambda: datetime.now(UTC) > end + timedelta(seconds=2), timeout=OBSERVED_SECONDS + 5)
    fires = read_fire_lines(passenger.fire_log)
    assert_each_fire_ran_once(fires)
    observed = sorted(fire.time for fire in fires if start <= fire.time <= end)
    expected = [start + timedelta(seconds=second) for second in range(OBSERVED_SECONDS + 1)]
    assert observed == expected, "every second fired, once"
    assert {fire.pid for fire in fires} <= first_pool
    assert passenger.pool() == first_pool, "Passenger replaced processes meanwhile"
    old_holder = holder_pid(passenger)
    assert old_holder in first_pool

    (passenger.app / "tmp" / "restart.txt").touch()
    time.sleep(1.5)  # past PassengerStatThrottleRate, so the next request sees it
    restarted_at = datetime.now(UTC)
    assert passenger.fetch("/admin/login/")[0] == 200
    passenger.wait(
        lambda: not first_pool & passenger.pool(),
        timeout=30,
        what="the old processes still ran after the restart",
    )
    new_pool = spawn_whole_pool(passenger)
    assert not new_pool & first_pool
    wait_for_lease_keepers(passenger, new_pool)
    assert passenger.logged(f"[pid {old_holder}] scheduler stopped"), "it released the lease"

    new_holder = passenger.wait(
        lambda: next((pid for pid in new_pool if passenger.logged(f"pid {pid}); sync")), None),
        timeout=LEASE_SECONDS + 10,
        what="no scheduler became active after the restart",
    )
    took_over_in = activated_at(passenger.django_log, new_holder) - restarted_at
    assert took_over_in < timedelta(seconds=LEASE_SECONDS), took_over_in
    assert holder_pid(passenger) == new_holder

    passenger.wait(
        lambda: sum(fire.pid == new_holder for fire in read_fire_lines(passenger.fire_log)) >= 3,
        timeout=15,
        what="the new scheduler did not run the job",
    )
    fires = read_fire_lines(passenger.fire_log)
    assert_each_fire_ran_once(fires)
    assert {fire.pid for fire in fires} <= first_pool | new_pool
    assert not passenger.logged("Traceback"), passenger.logs()
