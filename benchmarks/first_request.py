"""python -m benchmarks.first_request PATH [--stay]: load the WSGI app as a web
server does (config.wsgi), answer one GET of PATH, print the status and the
seconds that took (JSON). With --stay, then wait until stdin closes, so that
others can look at the process (/proc/PID/status)."""

import time

STARTED = time.perf_counter()

import json  # noqa: E402
import sys  # noqa: E402
from wsgiref.util import setup_testing_defaults  # noqa: E402


def main(path: str, stay: bool) -> None:
    from config.wsgi import application

    environ = {"PATH_INFO": path, "HTTP_HOST": "127.0.0.1", "SERVER_NAME": "127.0.0.1"}
    setup_testing_defaults(environ)
    status = []
    body = b"".join(application(environ, lambda line, headers, exc_info=None: status.append(line)))
    seconds = time.perf_counter() - STARTED
    print(json.dumps({"status": status[0], "bytes": len(body), "seconds": seconds}), flush=True)
    if stay:
        sys.stdin.read()


if __name__ == "__main__":
    main(sys.argv[1], stay="--stay" in sys.argv[2:])
