import os


def record_fire(fire_time):
    """Append one line per run: the fire time it serves and the process that ran it."""
    line = f"{fire_time.isoformat()} {os.getpid()}\n"
    descriptor = os.open(os.environ["E2E_FIRE_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(descriptor, line.encode())
    finally:
        os.close(descriptor)
