"""The API's answers as OpenAPI describes them (GET /api/v1/schema/). Only a
description: the answers themselves are written by crm.scheduler.serializers
and crm.api.serializers, and tests/api/test_schema.py checks that these name
exactly the fields those write."""

from rest_framework import serializers

from crm.scheduler.history import STATUSES


class Pause(serializers.Serializer):
    by = serializers.CharField()
    since = serializers.DateTimeField()
    until = serializers.DateTimeField(allow_null=True, help_text="Null: until resumed.")
    note = serializers.CharField()


class Execution(serializers.Serializer):
    """A run of a job (a fire), as `scheduler status --json` gives a job's last run."""

    scheduled = serializers.DateTimeField(help_text="The fire time it ran for.")
    started = serializers.DateTimeField(allow_null=True)
    status = serializers.ChoiceField(STATUSES)
    duration_seconds = serializers.FloatField(allow_null=True)
    triggered_by = serializers.CharField(
        allow_null=True, help_text='"schedule", or who ran it by hand and from where.'
    )
    error = serializers.CharField(allow_null=True)
    result = serializers.JSONField(allow_null=True, help_text="What the job returned.")
    attempt = serializers.IntegerField(allow_null=True)
    next_attempt_at = serializers.DateTimeField(allow_null=True)


class ListedExecution(Execution):
    id = serializers.IntegerField()
    job = serializers.CharField()


class Attempt(serializers.Serializer):
    number = serializers.IntegerField()
    status = serializers.CharField()
    started = serializers.DateTimeField()
    duration_seconds = serializers.FloatField()
    host = serializers.CharField()
    pid = serializers.IntegerField()
    error = serializers.CharField()
    traceback = serializers.CharField()


class ExecutionInFull(ListedExecution):
    traceback = serializers.CharField(allow_null=True)
    host = serializers.CharField(allow_null=True)
    pid = serializers.IntegerField(allow_null=True)
    attempts = Attempt(many=True, help_text="Each attempt, for a job with retries.")


class ExecutionPage(serializers.Serializer):
    next = serializers.URLField(allow_null=True, help_text="The next page; null on the last.")
    results = ListedExecution(many=True)


class JobState(serializers.Serializer):
    """A job's state, as `scheduler status --json` and /health/scheduler/ give it."""

    id = serializers.CharField()
    declared = serializers.BooleanField()
    stored = serializers.BooleanField()
    paused = serializers.BooleanField()
    done = serializers.BooleanField(help_text="A one-shot job whose fire has passed.")
    schedule = serializers.CharField(allow_null=True)
    schedule_in_words = serializers.CharField(allow_null=True)
    time_zone = serializers.CharField(allow_null=True)
    func = serializers.CharField(allow_null=True)
    description = serializers.CharField(allow_null=True)
    misfire_grace_seconds = serializers.IntegerField(allow_null=True)
    jitter_seconds = serializers.FloatField(allow_null=True)
    runs_in = serializers.ChoiceField(["thread", "process"], allow_null=True)
    policy_in_words = serializers.CharField(allow_null=True)
    timeout_seconds = serializers.FloatField(allow_null=True)
    retries = serializers.IntegerField(allow_null=True)
    retry_backoff_seconds = serializers.FloatField(allow_null=True)
    retry_backoff_max_seconds = serializers.FloatField(allow_null=True)
    retry_on = serializers.ListField(child=serializers.CharField(), allow_null=True)
    overlap = serializers.ChoiceField(["skip", "queue", "allow"], allow_null=True)
    max_concurrent = serializers.IntegerField(allow_null=True)
    enabled = serializers.BooleanField(allow_null=True)
    pause = Pause(allow_null=True)
    next_run = serializers.DateTimeField(allow_null=True)
    running = serializers.BooleanField()
    retrying = serializers.BooleanField()
    late = serializers.BooleanField()
    late_since = serializers.DateTimeField(allow_null=True)
    failing = serializers.BooleanField()
    last_run = Execution(allow_null=True)
    last_finished_run = Execution(allow_null=True)


class JobList(serializers.Serializer):
    results = JobState(many=True)


class Operation(serializers.Serializer):
    """What became of a request: done (no scheduler was active, so it was
    applied here), queued (for the active scheduler, or the first to start
    within 5 minutes), or failed, and why."""

    action = serializers.ChoiceField(["run", "pause", "resume"])
    job = serializers.CharField()
    state = serializers.ChoiceField(["done", "queued", "failed"])
    message = serializers.CharField()
    command = serializers.IntegerField(allow_null=True, help_text="The command's id.")


class Error(serializers.Serializer):
    detail = serializers.CharField(help_text="What is wrong, naming the field, and the fix.")
    errors = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text="With a 400: the messages by field.",
    )
