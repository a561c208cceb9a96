import os
import socket
import time


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
