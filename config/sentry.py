"""Sentry, when sentry-sdk is installed and SENTRY_DSN is set: errors (the
Django integration), and the jobs' Crons check-ins (crm.scheduler.sentry_crons).
sentry-sdk is optional: without it, SENTRY_DSN is reported by `manage.py check`
(crm.W003) and nothing is sent."""

from config.env import ConfigurationError


def init_sentry(dsn: str) -> bool:
    """Set sentry-sdk up with `dsn`; False if it is not installed."""
    try:
        import sentry_sdk
        from sentry_sdk.integrations.django import DjangoIntegration
        from sentry_sdk.utils import BadDsn
    except ImportError:
        return False
    try:
        # Environment and release: SENTRY_ENVIRONMENT and SENTRY_RELEASE, read by sentry-sdk.
        sentry_sdk.init(dsn=dsn, integrations=[DjangoIntegration()])
    except BadDsn as error:
        raise ConfigurationError(
            f"SENTRY_DSN is not a Sentry DSN ({error}). Use the DSN from the Sentry project's "
            "settings (Client Keys), or leave it empty."
        ) from None
    return True
