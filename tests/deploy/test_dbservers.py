"""The private database servers of tests/support/dbservers.py really do what fault-injection
tests need: each method is checked against real connections."""

import contextlib
import os
import time
from urllib.parse import urlsplit

import psycopg
import pymysql
import pytest

from tests.support.dbservers import SHARED_PORTS, PrivateMariaDB, PrivatePostgres
from tests.support.processes import e2e_env, query

pytestmark = pytest.mark.faults

CURRENT_DATABASE = {"postgres": "SELECT current_database()", "mariadb": "SELECT DATABASE()"}
SERVER_PORT = {"postgres": "SELECT inet_server_port()", "mariadb": "SELECT @@port"}
LOST = {
    "postgres": (psycopg.OperationalError,),
    "mariadb": (pymysql.OperationalError, pymysql.InterfaceError),
}


def connect(url: str):
    """A new autocommit DB-API connection through `url`."""
    if url.startswith("postgres://"):
        return psycopg.connect(url, autocommit=True, connect_timeout=2)
    parts = urlsplit(url)
    return pymysql.connect(
        host=parts.hostname,
        port=parts.port,
        user=parts.username,
        database=parts.path.lstrip("/"),
        autocommit=True,
        connect_timeout=2,
    )


def scalar(connection, sql: str):
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchone()[0]


def assert_lost(server, connection):
    """`connection` gets an error on its next query."""
    with pytest.raises(LOST[server.kind]):
        scalar(connection, "SELECT 1")
    with contextlib.suppress(Exception):
        connection.close()


def assert_refused(server, url: str):
    assert not server.is_up()
    with pytest.raises(LOST[server.kind]):
        connect(url)


def make_table(url: str) -> None:
    with contextlib.closing(connect(url)) as connection, connection.cursor() as cursor:
        cursor.execute("CREATE TABLE marker (value INTEGER)")
        cursor.execute("INSERT INTO marker VALUES (42)")


@pytest.fixture(params=["postgres", "mariadb"])
def server(request):
    return request.getfixturevalue(f"private_{request.param}")


def test_url_reaches_the_private_server(server):
    url = server.create_database("app")
    assert server.port not in SHARED_PORTS
    assert url.endswith(f"@127.0.0.1:{server.port}/app")
    assert server.is_up()
    assert query(url, CURRENT_DATABASE[server.kind]) == [("app",)]
    assert query(url, SERVER_PORT[server.kind]) == [(server.port,)]


def test_the_app_migrates_on_the_private_server(server, tmp_path):
    url = server.create_database("crm")
    e2e_env(tmp_path, url)
    assert query(url, "SELECT COUNT(*) FROM crm_schedulerlease") == [(0,)]


def test_terminate_connections_cuts_only_that_database(server):
    app = server.create_database("app")
    other = connect(server.create_database("other"))
    victims = [connect(app), connect(app)]
    assert [scalar(victim, "SELECT 1") for victim in victims] == [1, 1]

    assert server.terminate_connections("app") == 2

    for victim in victims:
        assert_lost(server, victim)
    assert scalar(other, "SELECT 2") == 2
    assert query(app, "SELECT 3") == [(3,)]
    assert server.terminate_connections("app") == 0
    other.close()


def test_restart_drops_old_connections_and_keeps_data(server):
    url = server.create_database("app")
    make_table(url)
    old = connect(url)
    port = server.port

    server.restart()

    assert server.port == port
    assert_lost(server, old)
    assert query(url, "SELECT value FROM marker") == [(42,)]


def test_stop_refuses_connections_until_start(server):
    url = server.create_database("app")
    make_table(url)
    old = connect(url)

    server.stop()

    assert not server.running
    assert_lost(server, old)
    assert_refused(server, url)
    server.start()
    assert server.is_up()
    assert query(url, "SELECT value FROM marker") == [(42,)]


def test_every_stop_mode_stops(server):
    for mode in server.stop_signals:
        server.stop(mode)
        assert_refused(server, server.url())
        server.start()
        assert server.is_up(), mode
    with pytest.raises(ValueError):
        server.stop("gentle")


def test_kill_then_start_recovers(server):
    url = server.create_database("app")
    make_table(url)
    old = connect(url)
    pid = server.process.pid

    server.kill()

    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert_lost(server, old)
    assert_refused(server, url)
    if server.kind == "postgres":
        assert (server.data_dir / "postmaster.pid").exists()  # stale, from the killed server
    server.start()
    assert query(url, "SELECT value FROM marker") == [(42,)]


@pytest.mark.parametrize("private_mariadb", [{"wait_timeout": 20}], indirect=True)
def test_mariadb_options_and_runtime_globals(private_mariadb):
    url = private_mariadb.url()
    assert query(url, "SELECT @@GLOBAL.wait_timeout") == [(20,)]

    private_mariadb.set_global("wait_timeout", 1)
    idle = connect(url)
    assert scalar(idle, "SELECT @@SESSION.wait_timeout") == 1
    time.sleep(2.5)
    assert_lost(private_mariadb, idle)
    with pytest.raises(ValueError):
        private_mariadb.set_global("wait_timeout = 1; DROP DATABASE mysql; --", 1)


@pytest.mark.parametrize("server_class", [PrivatePostgres, PrivateMariaDB])
def test_cleanup_stops_the_server_and_removes_its_files(server_class, tmp_path):
    with server_class(tmp_path) as server:
        pid = server.process.pid
        url = server.url()
        assert server.is_up()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not server.run_dir.exists()
    assert_refused(server, url)
    assert server.log_path.read_text()  # the log stays with the test


def test_failed_start_reports_the_server_log(tmp_path):
    server = PrivateMariaDB(tmp_path, {"no_such_option": 1})
    try:
        with pytest.raises(RuntimeError, match=r"(?s)exited with code.*no-such-option"):
            server.start()
        assert not server.running
    finally:
        server.cleanup()
