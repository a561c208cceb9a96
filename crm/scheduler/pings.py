"""Outbound pings: a job's `ping_url` around each run, in the healthchecks.io
convention (URL/start as it starts, the URL itself when it succeeds, URL/fail
when it fails, with its duration or error in the body); the active
scheduler's heartbeat (SCHEDULER_HEARTBEAT_URL); and the alert webhooks'
posts (crm.scheduler.alert_routes).

One sender per process, made in CrmConfig.ready(), sends them from a bounded
queue in one daemon thread, with a short timeout and a few retries: a slow or
failing receiver never delays a run, the lease keeper or an alert check. A
target that stops taking them is logged once, and once more when it takes them
again, never at each ping. URLs are never logged whole: ping keys and webhook
tokens are part of them.
"""

import atexit
import json
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.client import HTTPException
from urllib.error import HTTPError, URLError
from urllib.parse import urlsplit, urlunsplit
from urllib.request import Request, urlopen

from django.apps import apps
from django.conf import settings

from crm.scheduler.declarations import declared_job

logger = logging.getLogger("crm.scheduler")
QUEUE_SIZE = 1000
# Waits before the second and third attempts. As with `curl --retry`, only
# what may go through next time is retried: no answer in time, a dropped
# connection, 408, 429 or a 5xx; not a refused connection or a 404.
RETRY_WAITS = (0.5, 2.0)
RETRIED_STATUSES = (408, 429)
# How long a process on its way out waits for its queued pings.
DRAIN_SECONDS = 5
# Of a failed run's error, this many characters go into its ping's body.
MAX_ERROR_LENGTH = 10_000
USER_AGENT = "helpdesk-crm-scheduler"


@dataclass(frozen=True)
class Ping:
    target: str  # the URL as configured: what "failing" is kept and logged for
    url: str
    body: bytes
    content_type: str
    label: str  # what it is, for the log: "job nightly's ping"


class PingSender:
    def __init__(self):
        self._waiting = deque()  # the ping being sent stays first until it is done
        self._changed = threading.Condition()
        self._thread = None
        self._failing = set()  # targets whose failure is logged already
        self._dropping = False
        # Registered as the app loads, before the scheduler's own stop: atexit
        # runs that one first, and the pings of the runs it waits for still go.
        atexit.register(self.drain)

    def send(self, target: str, url: str, body: str, label: str) -> None:
        self._put(Ping(target, url, body.encode(), "text/plain; charset=utf-8", label))

    def post_json(self, url: str, payload: dict, label: str) -> None:
        body = json.dumps(payload, default=str).encode()
        self._put(Ping(url, url, body, "application/json", label))

    def drain(self, timeout: float = DRAIN_SECONDS) -> bool:
        """Wait up to `timeout` seconds for the pings queued so far to be sent
        or given up; whether they were."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._waiting:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)
        return True

    def _put(self, ping: Ping) -> None:
        with self._changed:
            if len(self._waiting) >= QUEUE_SIZE:
                if not self._dropping:
                    logger.warning(
                        "%d pings are waiting to be sent; dropping new ones until they go "
                        "(is a ping target slow to answer?)",
                        len(self._waiting),
                    )
                self._dropping = True
                return
            if self._dropping:
                logger.info("pings are sent again")
                self._dropping = False
            self._waiting.append(ping)
            self._changed.notify_all()
            # Started on the first ping: most processes never send one. Also
            # restarted in a child forked after it started (a preloading server).
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._send_all, name="crm-pings", daemon=True
                )
                self._thread.start()

    def _send_all(self) -> None:
        while True:
            with self._changed:
                while not self._waiting:
                    self._changed.wait()
                ping = self._waiting[0]
            try:
                self._note(ping, _send_with_retries(ping))
            except Exception:
                logger.exception("%s could not be sent", ping.label)
            finally:
                with self._changed:
                    self._waiting.popleft()
                    self._changed.notify_all()

    def _note(self, ping: Ping, error: str | None) -> None:
        """Logs the transitions only: the first failure, and the first success after."""
        where = f"{ping.label} to {shown(ping.target)}"
        if error is None and ping.target in self._failing:
            self._failing.discard(ping.target)
            logger.info("%s goes through again", where)
        elif error is not None and ping.target not in self._failing:
            self._failing.add(ping.target)
            logger.warning(
                "%s failed: %s; its failures are not logged again until one goes through",
                where,
                error,
            )


def _send_with_retries(ping: Ping) -> str | None:
    """None once the receiver took it; else why not, after the last attempt."""
    for wait in (*RETRY_WAITS, None):
        error, worth_retrying = _send_once(ping, settings.PING_TIMEOUT_SECONDS)
        if error is None or not worth_retrying or wait is None:
            return error
        time.sleep(wait)


def _send_once(ping: Ping, timeout: float) -> tuple[str | None, bool]:
    """What went wrong (None: nothing), and whether another attempt may work."""
    headers = {"Content-Type": ping.content_type, "User-Agent": USER_AGENT}
    try:
        request = Request(ping.url, data=ping.body, headers=headers, method="POST")
        with urlopen(request, timeout=timeout) as response:
            response.read()
    except HTTPError as error:
        return f"HTTP {error.code}", error.code in RETRIED_STATUSES or error.code >= 500
    except TimeoutError:
        return f"no answer within {timeout:g} s", True
    except URLError as error:
        if isinstance(error.reason, TimeoutError):
            return f"no answer within {timeout:g} s", True
        return str(error.reason), False
    except ConnectionError as error:  # dropped while answering
        return str(error) or type(error).__name__, True
    except ValueError:  # its message would quote the URL
        return "not an http:// or https:// URL (`manage.py check` says why)", False
    except (HTTPException, OSError) as error:
        return str(error) or type(error).__name__, False
    return None, False


def shown(url: str) -> str:
    """A URL as it may be logged: scheme and host only."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "a malformed URL"
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}/…"


def url_problem(url) -> str | None:
    """What makes `url` unusable as a ping or webhook target (None: nothing).
    Never quotes it: such URLs hold secrets."""
    if not isinstance(url, str):
        return f"is {type(url).__name__}, not text"
    if any(character.isspace() for character in url):
        return "contains spaces"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError for a port that is not a number)
    except ValueError:
        return "is not a URL"
    if parts.scheme not in ("http", "https"):
        return "does not start with http:// or https://"
    if not parts.hostname:
        return "names no host"
    return None


def process_sender() -> PingSender:
    """This process's sender (made in CrmConfig.ready())."""
    return apps.get_app_config("crm").ping_sender


def with_suffix(url: str, suffix: str) -> str:
    """URL/suffix, before any query string: https://hc-ping.com/KEY/slug?create=1
    gives https://hc-ping.com/KEY/slug/start?create=1."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"{parts.path.rstrip('/')}/{suffix}"))


def ping_run_started(job_id: str, scheduled_at) -> None:
    url = _ping_url(job_id)
    if url:
        body = f"started the fire of {scheduled_at.isoformat()}"
        process_sender().send(url, with_suffix(url, "start"), body, f"job {job_id}'s ping")


def ping_run_finished(job_id: str, status: str, duration: float, exception) -> None:
    """A fire waiting for another attempt has not ended: its next attempt pings."""
    url = _ping_url(job_id)
    if not url or status == "retrying":
        return
    if status == "succeeded":
        sent_to, body = url, f"succeeded in {duration:.3f} s"
    else:
        sent_to = with_suffix(url, "fail")
        body = f"failed after {duration:.3f} s: {error_text(exception)}"[:MAX_ERROR_LENGTH]
    process_sender().send(url, sent_to, body, f"job {job_id}'s ping")


def error_text(exception) -> str:
    # A run in a process of its own fails with ChildFailed, naming the child's error.
    name = getattr(exception, "type_name", None) or type(exception).__name__
    return f"{name}: {exception}"


def _ping_url(job_id: str) -> str | None:
    declaration = declared_job(job_id)
    return declaration.ping_url if declaration is not None else None


class Heartbeat:
    """Pings SCHEDULER_HEARTBEAT_URL every SCHEDULER_HEARTBEAT_MINUTES while
    this process's scheduler dispatches, so that an external monitor notices
    when none does (no scheduler running at all, or a stalled one)."""

    def __init__(self):
        self._next = 0.0

    def beat_if_due(self, dispatching: bool, who: str) -> None:
        url = settings.SCHEDULER_HEARTBEAT_URL
        if not url or not dispatching or time.monotonic() < self._next:
            return
        self._next = time.monotonic() + settings.SCHEDULER_HEARTBEAT_MINUTES * 60
        process_sender().send(url, url, f"scheduler active: {who}", "the scheduler heartbeat")
