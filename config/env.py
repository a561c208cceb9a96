"""Strict readers for settings that come from the environment or a `.env` file.

Every reader stops start-up with one line naming the variable and the values it
accepts, instead of a traceback or a silently wrong default.
"""

import os
import sys
import zoneinfo
from email.utils import getaddresses
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from decouple import Config, RepositoryEmpty, RepositoryEnv, UndefinedValueError

BOOLEAN_WORDS = "1/0, true/false, yes/no, on/off"
DATABASE_SCHEMES = {
    "sqlite": "django.db.backends.sqlite3",
    "postgres": "django.db.backends.postgresql",
    "postgresql": "django.db.backends.postgresql",
    "pgsql": "django.db.backends.postgresql",
    "mysql": "django.db.backends.mysql",
    "mariadb": "django.db.backends.mysql",
}
_UNSET = object()


class ConfigurationError(Exception):
    """A setting from the environment is missing or malformed."""


def exit_on_configuration_error(error: ConfigurationError) -> None:
    sys.stderr.write(f"Configuration error: {error}\n")
    raise SystemExit(1)


class Environment:
    """Reads variables from the process environment first, then from a `.env` file."""

    def __init__(self, base_dir: Path):
        self.base_dir = base_dir
        self._config = Config(self._repository())

    def _repository(self):
        explicit = os.environ.get("ENV_FILE")
        path = Path(explicit) if explicit else self.base_dir / ".env"
        if path.is_file():
            return RepositoryEnv(str(path))
        if explicit and explicit != os.devnull:
            raise ConfigurationError(
                f"ENV_FILE points to {explicit!r}, which is not a file. "
                "Set ENV_FILE to an existing .env file, "
                "or unset it to use the one next to manage.py."
            )
        return RepositoryEmpty()

    def raw(self, name: str, default=_UNSET):
        try:
            if default is _UNSET:
                return self._config(name)
            return self._config(name, default=default)
        except UndefinedValueError:
            return None

    def string(self, name: str, default: str = "") -> str:
        return str(self.raw(name, default)).strip()

    def required_string(self, name: str, how_to_fix: str) -> str:
        value = self.raw(name)
        if value is None or not str(value).strip():
            raise ConfigurationError(f"{name} is not set. {how_to_fix}")
        return str(value).strip()

    def boolean(self, name: str, default: bool) -> bool:
        value = self.raw(name, None)
        if value is None or str(value).strip() == "":
            return default
        word = str(value).strip().lower()
        if word in {"1", "true", "yes", "on", "y", "t"}:
            return True
        if word in {"0", "false", "no", "off", "n", "f"}:
            return False
        raise ConfigurationError(f"{name}={value!r} is not a boolean. Use one of {BOOLEAN_WORDS}.")

    def integer(self, name: str, default: int, minimum: int | None = None) -> int:
        value = self.raw(name, None)
        if value is None or str(value).strip() == "":
            return default
        try:
            number = int(str(value).strip())
        except ValueError:
            number = None
        if number is None or (minimum is not None and number < minimum):
            floor = f" of at least {minimum}" if minimum is not None else ""
            raise ConfigurationError(f"{name}={value!r} is not valid. Use a whole number{floor}.")
        return number

    def strings(self, name: str, default: str = "") -> list[str]:
        return [item.strip() for item in self.string(name, default).split(",") if item.strip()]

    def origins(self, name: str) -> list[str]:
        origins = self.strings(name)
        for origin in origins:
            if not origin.startswith(("http://", "https://")):
                raise ConfigurationError(
                    f"{name} contains {origin!r}. Each origin must start with http:// or https://, "
                    "e.g. https://crm.example.com."
                )
        return origins

    def rate(self, name: str, default: str) -> str:
        """A request rate such as 600/minute (Django REST framework's throttle rates)."""
        rate = self.string(name, default) or default
        number, _, period = rate.partition("/")
        if not number.isdigit() or period not in {"second", "minute", "hour", "day"}:
            raise ConfigurationError(
                f"{name}={rate!r} is not a rate. Use a number of requests per second, "
                "minute, hour or day, e.g. 600/minute."
            )
        return rate

    def time_zone(self, name: str, default: str = "UTC") -> str:
        zone = self.string(name, default) or default
        try:
            zoneinfo.ZoneInfo(zone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ConfigurationError(
                f"{name}={zone!r} is not a known time zone. "
                "Use an IANA name such as UTC, Europe/Warsaw or America/New_York."
            ) from None
        return zone

    def admins(self, name: str) -> list[tuple[str, str]]:
        text = self.string(name)
        if not text:
            return []
        pairs = getaddresses([text])
        if not pairs or any("@" not in address for _, address in pairs):
            raise ConfigurationError(
                f"{name}={text!r} is not a list of e-mail addresses. "
                'Use "Name <name@example.com>, other@example.com".'
            )
        return [(display or address, address) for display, address in pairs]

    def sentry_dsn(self, name: str) -> str:
        """A Sentry DSN, https://PUBLIC_KEY@HOST/PROJECT_ID, or "" (unset).
        Not quoted in the error: it holds the project's key."""
        dsn = self.string(name)
        if not dsn:
            return ""
        try:
            parts = urlsplit(dsn)
            parts.port  # noqa: B018  (raises ValueError for a port that is not a number)
        except ValueError:
            parts = None
        project = parts.path.rstrip("/").rpartition("/")[2] if parts else ""
        if (
            parts is None
            or parts.scheme not in ("http", "https")
            or not parts.username
            or not parts.hostname
            or not project.isdigit()
        ):
            raise ConfigurationError(
                f"{name} is not a Sentry DSN. Use the DSN from the Sentry project's settings "
                "(Client Keys), https://<public key>@<host>/<project id>, or leave it empty."
            )
        return dsn

    def path(self, name: str, default: str) -> Path:
        return self._under_base_dir(self.string(name, default) or default)

    def _under_base_dir(self, value: str) -> Path:
        path = Path(value)
        return path if path.is_absolute() else self.base_dir / path

    def database(self, name: str, default: str) -> dict:
        url = self.string(name, default) or default
        scheme = url.split("://", 1)[0] if "://" in url else ""
        if scheme not in DATABASE_SCHEMES:
            accepted = ", ".join(f"{s}://" for s in DATABASE_SCHEMES)
            raise ConfigurationError(
                f"{name} has an unsupported scheme {scheme + '://' if scheme else '(none)'}. "
                f"Use one of {accepted}, e.g. postgres://user:password@localhost:5432/crm."
            )
        if scheme == "mariadb":
            url = "mysql" + url[len("mariadb") :]
        try:
            database = dj_database_url.parse(url, conn_health_checks=True)
        except (ValueError, dj_database_url.ParseError) as error:
            raise ConfigurationError(
                f"{name} is not a valid database URL ({error}). "
                "Use e.g. sqlite:///db.sqlite3 or postgres://user:password@localhost:5432/crm; "
                "quote special characters in the password with %XX."
            ) from None
        is_sqlite = database["ENGINE"] == DATABASE_SCHEMES["sqlite"]
        if is_sqlite and database["NAME"] and database["NAME"] != ":memory:":
            # Relative to the project, not the working directory: Passenger and
            # gunicorn do not always start in the project directory.
            database["NAME"] = str(self._under_base_dir(database["NAME"]))
        if not database["NAME"]:
            raise ConfigurationError(f"{name} names no database. Add the name after the last /.")
        return database
