"""Private PostgreSQL and MariaDB servers for database fault-injection tests.

A test starts its own server on a free loopback port (never the machine's shared
services on 5432/3306), then restarts it, stops it for a while, kills it or cuts
its connections, and the fixture stops it at the end, whatever the outcome.

The data directory and sockets live in a short-named directory in /dev/shm or /tmp (the
`postgres` OS user cannot enter pytest's 0700 tmp_path, and Unix socket paths
are limited to 107 bytes); the server's log is written to `base_dir` (the test's
tmp_path), where it stays after the test. A freshly initialized data directory
is made once per pytest process and copied for each server, which is much faster
than running initdb / mariadb-install-db every time.
"""

import atexit
import contextlib
import glob
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest

START_TIMEOUT = 30
STOP_TIMEOUT = 30
SHARED_PORTS = {5432, 3306}


def _runtime_parent() -> str:
    """Where data directories and sockets go: a world-traversable directory with a
    short path; tmpfs when it has room (copying a data directory there takes
    0.1 s instead of about 1 s on disk), else /tmp. PRIVATE_DB_DIR overrides."""
    if configured := os.environ.get("PRIVATE_DB_DIR"):
        return configured
    with contextlib.suppress(OSError):
        shm = os.statvfs("/dev/shm")
        if shm.f_bavail * shm.f_frsize >= 2 * 1024**3 and os.access("/dev/shm", os.W_OK):
            return "/dev/shm"
    return "/tmp"


RUNTIME_PARENT = _runtime_parent()


def _free_port() -> int:
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in SHARED_PORTS:
            return port


def _tail(path: Path, offset: int = 0, lines: int = 40) -> str:
    try:
        with open(path, "rb") as log:
            log.seek(offset)
            text = log.read().decode(errors="replace")
    except OSError as error:
        return f"(no log: {error})"
    return "\n".join(text.splitlines()[-lines:])


def _run(command: list[str], log: Path, env: dict[str, str] | None = None) -> None:
    with open(log, "ab") as output:
        result = subprocess.run(
            command, stdout=output, stderr=subprocess.STDOUT, env=env, cwd=RUNTIME_PARENT
        )
    if result.returncode != 0:
        raise RuntimeError(f"{command[0]} failed with exit code {result.returncode}:\n{_tail(log)}")


def _pids_with_cwd(directory: Path) -> list[int]:
    """Live processes whose working directory is `directory` (a server's children)."""
    target = str(directory)
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{entry}/cwd") == target:
                    pids.append(int(entry))
    return pids


_templates: dict[str, Path] = {}
_templates_root: list[Path] = []
_running: set["PrivateServer"] = set()


def _template(name: str, build: Callable[[Path], None]) -> Path:
    """A data directory made once per process by `build(directory)`, to copy."""
    if name not in _templates:
        if not _templates_root:
            root = Path(tempfile.mkdtemp(prefix="private-db-templates-", dir=RUNTIME_PARENT))
            root.chmod(0o755)
            _templates_root.append(root)
        directory = _templates_root[0] / name
        shutil.rmtree(directory, ignore_errors=True)  # from a build that failed
        directory.mkdir()
        build(directory)
        _templates[name] = directory
    return _templates[name]


@atexit.register
def _cleanup_at_exit() -> None:
    for server in list(_running):
        with contextlib.suppress(Exception):
            server.cleanup()
    for root in _templates_root:
        shutil.rmtree(root, ignore_errors=True)


class PrivateServer:
    """A database server process of this test: the common start/stop/kill logic."""

    kind = ""
    stop_signals: dict[str, signal.Signals] = {}
    connect_errors: tuple[type[Exception], ...] = ()

    def __init__(self, base_dir: Path):
        self.base_dir = Path(base_dir)
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.base_dir / f"{self.kind}.log"
        self.run_dir = Path(tempfile.mkdtemp(prefix=f"private-{self.kind}-", dir=RUNTIME_PARENT))
        self.data_dir = self.run_dir / "data"
        self.port = _free_port()
        self.process: subprocess.Popen | None = None
        self.started_once = False
        self.last_start_seconds: float | None = None
        self._log_offset = 0
        try:
            self._make_data_dir()
        except BaseException:
            shutil.rmtree(self.run_dir, ignore_errors=True)
            raise

    # To implement per server.
    def _make_data_dir(self) -> None:
        raise NotImplementedError

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _connect_admin(self, timeout: float = 2):
        raise NotImplementedError

    def _after_first_start(self) -> None:
        pass

    def _before_stop(self, mode: str) -> None:
        pass

    def _clear_stale_files(self) -> None:
        pass

    def _tidy_after_kill(self) -> None:
        pass

    # Lifecycle.
    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        """Start the server and wait until it accepts connections (no-op if running)."""
        if self.running:
            return
        began = time.monotonic()
        for attempt in range(3):
            self._clear_stale_files()
            self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
            with open(self.log_path, "ab") as log:
                self.process = subprocess.Popen(
                    self._command(),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    cwd=self.run_dir,
                    env=self._env(),
                    start_new_session=True,
                )
            _running.add(self)
            try:
                self._wait_ready()
                break
            except RuntimeError:
                output = _tail(self.log_path, self._log_offset)
                # The free port was taken before the server bound it: another one,
                # but only on the first start (the URLs handed out keep the port).
                if not self.started_once and attempt < 2 and "already in use" in output:
                    self._reap(signal.SIGKILL)
                    self.port = _free_port()
                    continue
                self._reap(signal.SIGKILL)
                raise
        if not self.started_once:
            self.started_once = True
            self._after_first_start()
        self.last_start_seconds = time.monotonic() - began

    def stop(self, mode: str = "fast") -> None:
        """Shut the server down (no-op if it is not running)."""
        if mode not in self.stop_signals:
            raise ValueError(f"stop mode for {self.kind}: one of {sorted(self.stop_signals)}")
        if not self.running:
            return
        self._before_stop(mode)
        self._reap(self.stop_signals[mode])

    def restart(self) -> None:
        """A fast shutdown, then a start on the same port."""
        self.stop("fast")
        self.start()

    def kill(self) -> None:
        """SIGKILL the server, as in a crash; `start()` recovers it."""
        if self.process is None:
            return
        self._reap(signal.SIGKILL)

    def is_up(self) -> bool:
        try:
            with contextlib.closing(self._connect_admin(timeout=2)):
                return True
        except self.connect_errors:
            return False

    def cleanup(self) -> None:
        """Stop the server whatever its state and remove its data directory."""
        try:
            if self.running:
                try:
                    self.stop("fast")
                except Exception:
                    self.kill()
            else:
                self._tidy_after_kill()
            self._reap(signal.SIGKILL)
        finally:
            _running.discard(self)
            shutil.rmtree(self.run_dir, ignore_errors=True)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc_info):
        self.cleanup()

    # Helpers.
    def _env(self) -> dict[str, str]:
        return {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "LC_ALL": "C"}

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"private {self.kind} exited with code {self.process.returncode} "
                    f"while starting on 127.0.0.1:{self.port}; log {self.log_path}:\n"
                    + _tail(self.log_path, self._log_offset)
                )
            try:
                with contextlib.closing(self._connect_admin(timeout=2)):
                    return
            except self.connect_errors:
                pass
            if time.monotonic() > deadline:
                self._reap(signal.SIGKILL)
                raise RuntimeError(
                    f"private {self.kind} did not accept connections on 127.0.0.1:{self.port} "
                    f"within {START_TIMEOUT} s; log {self.log_path}:\n"
                    + _tail(self.log_path, self._log_offset)
                )
            time.sleep(0.05)

    def _reap(self, sig: signal.Signals) -> None:
        """Send `sig` to the server, wait for it to exit and for its leftover children."""
        process = self.process
        if process is not None:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(sig)
                try:
                    process.wait(timeout=STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            self.process = None
        # PostgreSQL's backends outlive a killed postmaster for a moment; a new
        # postmaster refuses to start while they still hold the old shared memory.
        deadline = time.monotonic() + 10
        while pids := _pids_with_cwd(self.data_dir):
            if time.monotonic() > deadline:
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
            time.sleep(0.02)

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<{type(self).__name__} 127.0.0.1:{self.port} {state}>"


def _postgres_bin() -> Path:
    configured = os.environ.get("PRIVATE_POSTGRES_BIN")
    if configured:
        return Path(configured)
    # The newest server; a client-only version has a bin directory without initdb.
    found = sorted(
        (Path(initdb).parent for initdb in glob.glob("/usr/lib/postgresql/*/bin/initdb")),
        key=lambda path: int(path.parent.name),
    )
    if not found:
        raise RuntimeError("PostgreSQL server binaries not found in /usr/lib/postgresql/*/bin")
    return found[-1]


def _as_postgres(*command: str | Path) -> list[str]:
    """`command` run as the postgres OS user (the server refuses to run as root);
    setpriv execs it directly, so the server stays our child process."""
    return [
        "setpriv",
        "--reuid=postgres",
        "--regid=postgres",
        "--init-groups",
        "--",
        *map(str, command),
    ]


def _chown_postgres(path: Path) -> None:
    shutil.chown(path, "postgres", "postgres")


class PrivatePostgres(PrivateServer):
    """A private PostgreSQL server: trust authentication, 127.0.0.1 only, fsync off.

    Stop modes are pg_ctl's: "smart" waits for the clients to disconnect, "fast"
    disconnects them, "immediate" aborts (crash recovery at the next start)."""

    kind = "postgres"
    stop_signals = {
        "smart": signal.SIGTERM,
        "fast": signal.SIGINT,
        "immediate": signal.SIGQUIT,
    }

    def __init__(self, base_dir: Path):
        import psycopg

        self.connect_errors = (psycopg.OperationalError,)
        self.bin = _postgres_bin()
        super().__init__(base_dir)

    def _make_data_dir(self) -> None:
        _chown_postgres(self.run_dir)
        template = _template("postgres", self._initdb)
        subprocess.run(["cp", "-a", str(template / "data"), str(self.data_dir)], check=True)

    def _initdb(self, directory: Path) -> None:
        _chown_postgres(directory)
        _run(
            _as_postgres(
                self.bin / "initdb",
                "--pgdata",
                directory / "data",
                "--username=postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            ),
            self.log_path,
            env=self._env(),
        )

    def _command(self) -> list[str]:
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": self.port,
            "unix_socket_directories": self.run_dir,
            "fsync": "off",
        }
        options = [f"--{name}={value}" for name, value in settings.items()]
        return _as_postgres(self.bin / "postgres", "-D", self.data_dir, *options)

    def _clear_stale_files(self) -> None:
        # After a kill the lock file names a dead postmaster: PostgreSQL removes it
        # itself, unless that PID has been reused by another process.
        lock = self.data_dir / "postmaster.pid"
        try:
            pid = int(lock.read_text().split()[0])
            os.kill(pid, 0)
        except (FileNotFoundError, ValueError, IndexError, ProcessLookupError):
            return  # no lock file, or its PID is dead: PostgreSQL handles that
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{pid}/cwd") == str(self.data_dir):
                return  # really a live server of this data directory: start fails
        lock.unlink()

    def _tidy_after_kill(self) -> None:
        # A killed postmaster leaves its shared memory (a SysV segment, files in
        # /dev/shm); only a new postmaster on the same data directory removes them.
        if self.started_once and (self.data_dir / "postmaster.pid").exists():
            with contextlib.suppress(Exception):
                self.start()
                self.stop("immediate")

    def url(self, database: str = "postgres") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def _connect_admin(self, timeout: float = 2, database: str = "postgres"):
        import psycopg

        return psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user="postgres",
            dbname=database,
            connect_timeout=max(2, int(timeout)),
            autocommit=True,
        )

    def create_database(self, name: str) -> str:
        """Create database `name`; return its URL."""
        from psycopg import sql

        with self._connect_admin() as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def terminate_connections(self, database: str) -> int:
        """pg_terminate_backend every other connection to `database`, waiting for
        each to exit; return how many were terminated."""
        with self._connect_admin() as admin:
            rows = admin.execute(
                "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (database,),
            ).fetchall()
        return sum(1 for (terminated,) in rows if terminated)


class PrivateMariaDB(PrivateServer):
    """A private MariaDB server: root without a password, 127.0.0.1 only.

    `options` become server options: {"wait_timeout": 20} is `--wait-timeout=20`,
    {"skip_name_resolve": True} is `--skip-name-resolve`. Stop modes: "fast" is a
    normal shutdown, "immediate" one without InnoDB's log checkpoint."""

    kind = "mariadb"
    stop_signals = {"fast": signal.SIGTERM, "immediate": signal.SIGTERM}

    def __init__(self, base_dir: Path, options: dict | None = None):
        import pymysql

        # pymysql.OperationalError, not pymysql.err.OperationalError: once
        # Django's MySQL backend imports pymysql as MySQLdb, `pymysql.err` names
        # a second copy of that module, whose classes connect() never raises.
        self.connect_errors = (pymysql.OperationalError,)
        self.options = dict(options or {})
        super().__init__(base_dir)

    @property
    def socket_path(self) -> Path:
        return self.run_dir / "mysqld.sock"

    def _make_data_dir(self) -> None:
        template = _template("mariadb", self._install_db)
        subprocess.run(["cp", "-a", str(template / "data"), str(self.data_dir)], check=True)

    _innodb = ["--innodb-buffer-pool-size=32M", "--innodb-log-file-size=8M"]

    def _install_db(self, directory: Path) -> None:
        _run(
            [
                "mariadb-install-db",
                "--no-defaults",
                f"--datadir={directory / 'data'}",
                "--user=root",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                "--skip-name-resolve",
                *self._innodb,
            ],
            self.log_path,
            env=self._env(),
        )

    def _command(self) -> list[str]:
        options = []
        for name, value in self.options.items():
            flag = "--" + name.replace("_", "-")
            options.append(flag if value is True else f"{flag}={value}")
        return [
            shutil.which("mariadbd", path="/usr/sbin:/usr/bin") or "/usr/sbin/mariadbd",
            "--no-defaults",
            f"--datadir={self.data_dir}",
            f"--socket={self.socket_path}",
            f"--port={self.port}",
            "--bind-address=127.0.0.1",
            "--user=root",
            f"--pid-file={self.run_dir / 'mariadbd.pid'}",
            *self._innodb,
            "--innodb-flush-log-at-trx-commit=2",  # commits survive a kill, not an OS crash
            "--innodb-use-native-aio=0",  # io_uring/libaio may be unavailable in containers
            "--skip-log-bin",
            "--skip-name-resolve",
            "--character-set-server=utf8mb4",
            "--collation-server=utf8mb4_unicode_ci",
            *options,
        ]

    def _clear_stale_files(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.run_dir / "mariadbd.pid").unlink()

    def _after_first_start(self) -> None:
        # mariadb-install-db makes root@127.0.0.1 without a password; make sure,
        # over the Unix socket (root@localhost), in case the packaging changes.
        import pymysql

        with (
            contextlib.closing(
                pymysql.connect(unix_socket=str(self.socket_path), user="root", autocommit=True)
            ) as admin,
            admin.cursor() as cursor,
        ):
            cursor.execute("CREATE USER IF NOT EXISTS 'root'@'127.0.0.1'")
            cursor.execute("GRANT ALL ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION")

    def _before_stop(self, mode: str) -> None:
        if mode == "immediate":
            # No clean InnoDB shutdown: the next start runs crash recovery.
            self.set_global("innodb_fast_shutdown", 3)

    def url(self, database: str = "mysql") -> str:
        return f"mysql://root@127.0.0.1:{self.port}/{database}"

    def _connect_admin(self, timeout: float = 2, database: str | None = None):
        import pymysql

        return pymysql.connect(
            host="127.0.0.1",
            port=self.port,
            user="root",
            password="",
            database=database,
            connect_timeout=timeout,
            autocommit=True,
        )

    def _execute(self, sql: str, args=None) -> list[tuple]:
        with contextlib.closing(self._connect_admin()) as admin, admin.cursor() as cursor:
            cursor.execute(sql, args)
            return list(cursor.fetchall())

    def create_database(self, name: str) -> str:
        """Create database `name` (utf8mb4); return its URL."""
        quoted = name.replace("`", "``")
        self._execute(f"CREATE DATABASE `{quoted}` CHARACTER SET utf8mb4")
        return self.url(name)

    def set_global(self, name: str, value) -> None:
        """SET GLOBAL `name` = `value` at runtime (new connections see it)."""
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise ValueError(f"not a variable name: {name!r}")
        self._execute(f"SET GLOBAL {name} = %s", (value,))

    def terminate_connections(self, database: str) -> int:
        """KILL CONNECTION every other connection whose current database is
        `database`, waiting until they are gone; return how many were killed."""
        import pymysql

        with contextlib.closing(self._connect_admin()) as admin, admin.cursor() as cursor:
            find = (
                "SELECT ID FROM information_schema.PROCESSLIST "
                "WHERE DB = %s AND ID <> CONNECTION_ID()"
            )
            cursor.execute(find, (database,))
            ids = [row[0] for row in cursor.fetchall()]
            for thread_id in ids:
                with contextlib.suppress(pymysql.OperationalError):  # already gone
                    cursor.execute(f"KILL CONNECTION {int(thread_id)}")
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                cursor.execute(
                    "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID IN %s",
                    (ids or [0],),
                )
                if cursor.fetchone()[0] == 0:
                    break
                time.sleep(0.02)
        return len(ids)


@pytest.fixture
def private_postgres(tmp_path):
    """A started private PostgreSQL server, stopped after the test."""
    server = PrivatePostgres(tmp_path / "postgres")
    try:
        server.start()
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def private_mariadb(request, tmp_path):
    """A started private MariaDB server, stopped after the test. Server options
    by indirect parametrization:
    `@pytest.mark.parametrize("private_mariadb", [{"wait_timeout": 20}], indirect=True)`."""
    server = PrivateMariaDB(tmp_path / "mariadb", getattr(request, "param", None))
    try:
        server.start()
        yield server
    finally:
        server.cleanup()
