"""What the API reads (query parameters and request bodies, checked with a
message naming the field) and how it writes a run. Jobs are written by
crm.scheduler.serializers, the scheduler's one JSON shape."""

from collections.abc import Mapping

from django.utils import timezone
from django_apscheduler.models import DjangoJob
from rest_framework import serializers

from crm.api.pagination import BadCursor, Position
from crm.scheduler import history
from crm.scheduler import serializers as scheduler_serializers

INVALID_STATUS = '"{input}" is not a status. Use one of: ' + ", ".join(history.STATUSES) + "."
PAGE_SIZE, MAX_PAGE_SIZE = 50, 500
NOTE_LENGTH = 500


class StrictSerializer(serializers.Serializer):
    """Refuses fields it does not know, so that a misspelt one ("untill")
    is an error instead of being ignored."""

    def to_internal_value(self, data):
        unknown = sorted(set(data) - set(self.fields)) if isinstance(data, Mapping) else []
        if unknown:
            known = ", ".join(self.fields) or "nothing"
            raise serializers.ValidationError(
                {name: [f"Not a field of this request; it takes {known}."] for name in unknown}
            )
        return super().to_internal_value(data)


class ExecutionFilters(StrictSerializer):
    job = serializers.CharField(required=False, help_text="Only this job's runs.")
    status = serializers.ChoiceField(
        history.STATUSES,
        required=False,
        help_text="Only runs with this status.",
        error_messages={"invalid_choice": INVALID_STATUS},
    )
    scheduled_since = serializers.DateTimeField(
        required=False,
        help_text="Only runs of fires at or after this time (ISO 8601; TIME_ZONE "
        "unless it names a zone).",
    )
    scheduled_before = serializers.DateTimeField(
        required=False, help_text="Only runs of fires before this time (excluded)."
    )
    page_size = serializers.IntegerField(
        required=False,
        default=PAGE_SIZE,
        min_value=1,
        max_value=MAX_PAGE_SIZE,
        help_text=f"Runs per page (default {PAGE_SIZE}, at most {MAX_PAGE_SIZE}).",
    )
    cursor = serializers.CharField(
        required=False, help_text="Where a page starts: take it from the previous page's `next`."
    )

    def validate_job(self, job_id: str) -> str:
        if not DjangoJob.objects.filter(id=job_id).exists():
            raise serializers.ValidationError(
                f"No job {job_id!r} is stored; GET /api/v1/jobs/ lists the jobs."
            )
        return job_id

    def validate_cursor(self, cursor: str) -> Position:
        try:
            return Position.decode(cursor)
        except BadCursor:
            raise serializers.ValidationError(
                "Not a cursor of this list. Use the `next` link of a page as it is."
            ) from None

    def validate(self, attrs):
        since, before = attrs.get("scheduled_since"), attrs.get("scheduled_before")
        if since and before and before <= since:
            raise serializers.ValidationError(
                {"scheduled_before": ["Must be later than scheduled_since."]}
            )
        return attrs


class PauseRequest(StrictSerializer):
    until = serializers.DateTimeField(
        required=False,
        allow_null=True,
        default=None,
        help_text="When the job resumes by itself (ISO 8601; TIME_ZONE unless it names "
        "a zone). Empty: until resumed.",
    )
    note = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=NOTE_LENGTH, help_text="Why."
    )

    def validate_until(self, until):
        if until is not None and until <= timezone.now():
            raise serializers.ValidationError(
                "The pause's end must be in the future; leave it out to pause until resumed."
            )
        return until


class NoInput(StrictSerializer):
    """For actions that take nothing."""


def execution(run) -> dict:
    """A run in a list: the scheduler's shape of it, with its id and job."""
    return {"id": run.pk, "job": run.job_id, **scheduler_serializers.execution(run)}


def execution_in_full(run) -> dict:
    """One run: also its traceback, the process that ran it and its attempts."""
    detail = history.detail_of(run)
    return {
        **execution(run),
        "traceback": run.traceback,
        "host": detail.host if detail else None,
        "pid": detail.pid if detail else None,
        "attempts": [attempt(row) for row in run.attempts.all()],
    }


def attempt(row) -> dict:
    return {
        "number": row.number,
        "status": row.status,
        "started": row.started_at,
        "duration_seconds": float(row.duration),
        "host": row.host,
        "pid": row.pid,
        "error": row.error,
        "traceback": row.traceback,
    }
