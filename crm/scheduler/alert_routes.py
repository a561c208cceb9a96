"""Where an alert goes: a mail to ADMINS, and a POST to a webhook (the job's
`alert_webhook_url`, or else ALERT_WEBHOOK_URL) of JSON whose `text` field is
what Slack (and Mattermost, Rocket.Chat, …) shows. crm.scheduler.alerts
decides what to tell and claims it once in the database; this sends it.
"""

import logging
from dataclasses import dataclass, field

from django.conf import settings
from django.core.mail import mail_admins

from crm.scheduler.pings import process_sender

logger = logging.getLogger("crm.scheduler")


@dataclass(frozen=True)
class Alert:
    job: str | None  # None: the scheduler itself
    state: str  # what it became: "failing", "recovered", "late", "on_time", ...
    subject: str
    message: str  # the mail's body
    summary: str  # one line for a chat message
    admin_url: str
    details: dict = field(default_factory=dict)  # error, late_since, ...: in the JSON


def webhook_url(declaration=None) -> str:
    """Where a job's alerts (or, without a declaration, the scheduler's) are posted."""
    own = declaration.alert_webhook_url if declaration is not None else None
    return own or settings.ALERT_WEBHOOK_URL


def has_route(declaration=None) -> bool:
    return bool(settings.ADMINS or webhook_url(declaration))


def any_route() -> bool:
    """Whether any alert has anywhere to go. Reads SCHEDULER_JOBS as written
    (never fails on a malformed declaration: that is `manage.py check`'s)."""
    return has_route() or any(
        isinstance(entry, dict) and entry.get("alert_webhook_url")
        for entry in getattr(settings, "SCHEDULER_JOBS", [])
    )


def deliver(alert: Alert, webhook: str) -> None:
    # The post first: it is only queued, while a broken mail server raises.
    if webhook:
        process_sender().post_json(webhook, webhook_payload(alert), "the alert webhook")
        logger.info("scheduler alert posted to the webhook: %s", alert.subject)
    if settings.ADMINS:
        mail_admins(subject=alert.subject, message=alert.message)
        logger.info("scheduler alert mailed to ADMINS: %s", alert.subject)


def webhook_payload(alert: Alert) -> dict:
    return {
        "text": f"{alert.subject}: {alert.summary}\n{alert.admin_url}",
        "job": alert.job,
        "state": alert.state,
        "subject": alert.subject,
        **alert.details,
        "admin_url": alert.admin_url,
    }
