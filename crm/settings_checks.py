"""System checks for settings that work but are unsafe, and for those that
cannot work but do not stop start-up (`python manage.py check`)."""

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register

from crm.scheduler import metrics
from crm.scheduler.pings import url_problem

MIN_TOKEN_LENGTH = 32
TOKEN_SETTINGS = ("SCHEDULER_WAKE_TOKEN", "HEALTH_TOKEN", "METRICS_TOKEN")
URL_SETTINGS = ("SCHEDULER_HEARTBEAT_URL", "ALERT_WEBHOOK_URL")


@register("crm", Tags.security)
def check_token_lengths(app_configs=None, **kwargs) -> list[Warning]:
    tokens = {name: getattr(settings, name, "") or "" for name in TOKEN_SETTINGS}
    return [
        _short_token(name, len(token))
        for name, token in tokens.items()
        if 0 < len(token) < MIN_TOKEN_LENGTH
    ]


def _short_token(name: str, length: int) -> Warning:
    # The token itself is a secret: the message gives its length only.
    return Warning(
        f"{name} is {length} characters long; a bearer token that short can be guessed.",
        hint=(
            f"Set {name} to {MIN_TOKEN_LENGTH} characters or more, e.g. the output of "
            'python -c "import secrets; print(secrets.token_urlsafe(32))".'
        ),
        id="crm.W001",
    )


@register("crm")
def check_outbound_urls(app_configs=None, **kwargs) -> list[Error]:
    errors = []
    for name in URL_SETTINGS:
        url = getattr(settings, name, "") or ""
        problem = url_problem(url) if url else None
        if problem:
            # Not quoted: ping keys and webhook tokens are part of the URL.
            errors.append(
                Error(
                    f"{name} {problem}.",
                    hint=f"Set {name} to an http:// or https:// URL, or leave it empty.",
                    id="crm.E022",
                )
            )
    return errors


@register("crm")
def check_metrics_settings(app_configs=None, **kwargs) -> list[Error]:
    """GET /metrics answers 503 with the same message until these are fixed."""
    return [
        Error(error.problem, hint=error.fix, id=error.check_id)
        for error in metrics.configuration_errors()
    ]


@register("crm")
def check_sentry(app_configs=None, **kwargs) -> list[Warning]:
    """SENTRY_DSN set where sentry-sdk is not installed: nothing goes to Sentry."""
    if not getattr(settings, "SENTRY_DSN", ""):
        return []
    try:
        import sentry_sdk  # noqa: F401
    except ImportError:
        return [
            Warning(
                "SENTRY_DSN is set, but sentry-sdk is not installed: no errors or job "
                "check-ins are sent to Sentry.",
                hint="Install it (pip install sentry-sdk) or leave SENTRY_DSN empty.",
                id="crm.W003",
            )
        ]
    return []
