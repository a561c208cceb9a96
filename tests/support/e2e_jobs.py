import os
import socket
import time
from pathlib import Path


def record_fire(fire_time):
    """Append one line per run: the fire time it serves, the process and the host that ran it."""
    line = f"{fire_time.isoformat()} {os.getpid()} {socket.gethostname()}\n"
    descriptor = os.open(os.environ["E2E_FIRE_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(descriptor, line.encode())
    finally:
        os.close(descriptor)


def record_fire_then_sleep(fire_time, seconds: float):
    """A long run: logs its start like `record_fire`, then takes `seconds`."""
    record_fire(fire_time)
    time.sleep(seconds)


def hang(pid_file: str | None = None, ticket_title: str | None = None):
    """Stuck in a C call for good; first writes its pid to `pid_file` and saves
    a ticket titled `ticket_title`, if given."""
    _announce(pid_file, ticket_title)
    time.sleep(10**6)


def spin(pid_file: str | None = None):
    """A busy Python loop that never ends."""
    _announce(pid_file, None)
    while True:
        pass


def read_from_silent_socket(pid_file: str | None = None):
    """Blocked in a socket read that no data ever reaches."""
    _announce(pid_file, None)
    reader, _writer = socket.socketpair()
    reader.recv(1)


def fail(message: str):
    raise ValueError(message)


def report_process(label: str):
    """What an isolated run returns: where it ran."""
    return {"label": label, "pid": os.getpid()}


def _announce(pid_file, ticket_title) -> None:
    if ticket_title is not None:
        from crm import services

        services.ticket_create(
            title=ticket_title, requester_name="Isolated", requester_email="job@example.com"
        )
    if pid_file is not None:
        with open(pid_file, "w") as out:
            out.write(str(os.getpid()))


def fail_times(count_file: str, failures: int, fire_time=None):
    """Fails its first `failures` calls (counted in `count_file`), then succeeds;
    logs each call like `record_fire` when E2E_FIRE_LOG is set."""
    if fire_time is not None and "E2E_FIRE_LOG" in os.environ:
        record_fire(fire_time)
    path = Path(count_file)
    calls = int(path.read_text()) + 1 if path.exists() else 1
    path.write_text(str(calls))
    if calls <= failures:
        raise ConnectionError(f"call {calls}: the mail server did not answer")
    return calls
