from django.db import models
from django.utils import timezone


class SchedulerLease(models.Model):
    """Who may run jobs. One row per lease name; the holder renews it before
    `expires_at` (database time), and anyone may take it once that has passed."""

    name = models.CharField(primary_key=True, max_length=50)
    holder = models.CharField(max_length=200, blank=True, help_text="Empty when free.")
    host = models.CharField(max_length=255, blank=True)
    pid = models.PositiveIntegerField(null=True, blank=True)
    acquired_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    dispatched_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When the holder's dispatch loop last read the job store (database time).",
    )
    renewal_failures = models.PositiveBigIntegerField(
        default=0,
        help_text="Renewals by a holder that failed (the database did not answer, or the "
        "lease had passed on), across every holder so far.",
    )

    class Meta:
        verbose_name = "scheduler lease"

    def __str__(self):
        return f"{self.name}: {self.holder or 'free'}"


class JobAlert(models.Model):
    """What ADMINS were last told about a job: failing since which run, late
    for which fire (both empty: all well). See crm.scheduler.alerts."""

    job_id = models.CharField(primary_key=True, max_length=255)
    failing_run_id = models.BigIntegerField(null=True, blank=True)
    late_since = models.DateTimeField(null=True, blank=True)
    changed_at = models.DateTimeField(default=timezone.now)

    def __str__(self):
        return f"{self.job_id}: failing run {self.failing_run_id}, late since {self.late_since}"


class RunDetail(models.Model):
    """What django-apscheduler's DjangoJobExecution does not record about a run."""

    execution = models.OneToOneField(
        "django_apscheduler.DjangoJobExecution",
        primary_key=True,
        on_delete=models.CASCADE,
        related_name="detail",
    )
    triggered_by = models.CharField(
        max_length=200, help_text='"schedule", or who ran it by hand and from where.'
    )
    started_at = models.DateTimeField()
    host = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    scheduler = models.CharField(
        max_length=200, blank=True, help_text="Lease token of the scheduler that ran it, if any."
    )
    result = models.JSONField(null=True, blank=True, help_text="What the job returned.")
    attempt = models.PositiveSmallIntegerField(
        default=1, help_text="Which attempt of the fire runs, or ran last (with retries)."
    )
    retry_at = models.DateTimeField(
        null=True, blank=True, help_text="When the fire's next attempt starts, while it waits."
    )
    heartbeat_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Database time when the process running it last said it still does.",
    )

    def __str__(self):
        return f"run {self.execution_id} by {self.triggered_by}"


class RunAttempt(models.Model):
    """One attempt of a fire of a job that declares retries; the fire's own
    history row holds the outcome of the last."""

    execution = models.ForeignKey(
        "django_apscheduler.DjangoJobExecution", on_delete=models.CASCADE, related_name="attempts"
    )
    number = models.PositiveSmallIntegerField()
    status = models.CharField(max_length=50)
    started_at = models.DateTimeField()
    duration = models.DecimalField(max_digits=15, decimal_places=2)
    host = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    error = models.TextField(blank=True)
    traceback = models.TextField(blank=True)

    class Meta:
        ordering = ["execution", "number"]
        constraints = [
            models.UniqueConstraint(fields=["execution", "number"], name="one_row_per_attempt")
        ]

    def __str__(self):
        return f"attempt {self.number} of run {self.execution_id}: {self.status}"


class SchedulerCommand(models.Model):
    """A request from any process (admin, command line) that the active scheduler
    carries out, so that only the active process writes its jobs."""

    class Action(models.TextChoices):
        RUN = "run", "Run now"
        PAUSE = "pause", "Pause"
        RESUME = "resume", "Resume"
        SKIP = "skip", "Skip the next fire"
        SYNC = "sync", "Sync declarations"
        BACKFILL = "backfill", "Backfill"

    action = models.CharField(max_length=10, choices=Action.choices)
    job_id = models.CharField(max_length=255, blank=True)
    requested_by = models.CharField(max_length=200)
    requested_at = models.DateTimeField(default=timezone.now)
    taken_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    succeeded = models.BooleanField(null=True)
    outcome = models.TextField(blank=True)
    until = models.DateTimeField(null=True, blank=True, help_text="A pause's end, if any.")
    note = models.CharField(max_length=500, blank=True, help_text="Why, for a pause.")
    range_start = models.DateTimeField(
        null=True, blank=True, help_text="A backfill's first fire time."
    )
    range_end = models.DateTimeField(
        null=True, blank=True, help_text="A backfill's last fire time."
    )
    force = models.BooleanField(
        default=False,
        help_text="A backfill also of a job that does not take its fire time, or of "
        "more than 10,000 fires.",
    )
    execution = models.ForeignKey(
        "django_apscheduler.DjangoJobExecution",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    class Meta:
        indexes = [
            # The active scheduler polls for commands not yet taken (taken_at
            # null). Not a partial index: MariaDB has none.
            models.Index(fields=["taken_at", "id"], name="command_pending_idx")
        ]

    def __str__(self):
        return f"{self.action} {self.job_id}".strip()


class DisabledJob(models.Model):
    """A job paused because its declaration is disabled (e.g. AUTO_CLOSE_ENABLED
    is false), so that enabling it again resumes it, while a job an operator
    paused stays paused."""

    job_id = models.CharField(primary_key=True, max_length=255)
    since = models.DateTimeField(default=timezone.now)

    def __str__(self):
        return f"{self.job_id}: disabled since {self.since:%Y-%m-%d %H:%M}"


class JobPause(models.Model):
    """A job an operator paused: who, why, and until when (empty: until resumed).
    The active scheduler resumes it by itself once `until` has passed."""

    job_id = models.CharField(primary_key=True, max_length=255)
    paused_by = models.CharField(max_length=200)
    paused_at = models.DateTimeField(default=timezone.now)
    until = models.DateTimeField(null=True, blank=True)
    note = models.CharField(max_length=500, blank=True)

    def __str__(self):
        until = f" until {self.until:%Y-%m-%d %H:%M}" if self.until else ""
        return f"{self.job_id}: paused by {self.paused_by}{until}"


class AuditEntry(models.Model):
    """One request to operate the scheduler (run now, pause, resume, skip,
    backfill, sync): who made it, from where, when, on what, and how it ended.
    Written as the request is made (crm.scheduler.audit). A request handed to
    a scheduler as a command ends as its command does; one carried out or
    refused in the requesting process keeps its own outcome."""

    class Source(models.TextChoices):
        ADMIN = "admin", "Admin"
        CLI = "cli", "Command line"
        API = "api", "API"
        SCHEDULER = "scheduler", "Scheduler (a pause's end)"

    at = models.DateTimeField(default=timezone.now, db_index=True)
    requested_by = models.CharField(max_length=200)
    source = models.CharField(max_length=10, choices=Source.choices)
    action = models.CharField(max_length=10, choices=SchedulerCommand.Action.choices)
    job_id = models.CharField(max_length=255, blank=True, help_text="Empty for a sync.")
    details = models.CharField(
        max_length=500, blank=True, help_text="A pause's end and note, a backfill's range."
    )
    succeeded = models.BooleanField(null=True)
    outcome = models.TextField(blank=True)
    command = models.ForeignKey(
        SchedulerCommand, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        verbose_name = "scheduler audit entry"
        verbose_name_plural = "scheduler audit entries"

    def __str__(self):
        return f"{self.action} {self.job_id}".strip() + f" by {self.requested_by}"

    @property
    def final_succeeded(self) -> bool | None:
        """True or False once the request has ended; None while it has not."""
        return self.command.succeeded if self.command is not None else self.succeeded

    @property
    def final_outcome(self) -> str:
        if self.command is None:
            return self.outcome or "no outcome recorded (the requesting process stopped)"
        if self.command.finished_at is not None:
            return self.command.outcome
        if self.command.taken_at is not None:
            return "being carried out by the active scheduler"
        return "queued for the active scheduler"


class RunTally(models.Model):
    """How many runs of a job ended with a status, counted from the run history
    and kept when the history is pruned. See crm.scheduler.tally."""

    job_id = models.CharField(max_length=255)
    status = models.CharField(max_length=50)
    runs = models.PositiveBigIntegerField(default=0)
    last_finished = models.FloatField(
        null=True, blank=True, help_text="When the latest of them finished (Unix time)."
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["job_id", "status"], name="one_tally_per_outcome")
        ]

    def __str__(self):
        return f"{self.job_id}: {self.runs} {self.status}"


class RunTallyMark(models.Model):
    """How far the run history has been counted into RunTally: every run up to
    `counted_through` (by id) except `pending`, the ones not finished then."""

    name = models.CharField(primary_key=True, max_length=50)
    counted_through = models.BigIntegerField(default=0)
    next_through = models.BigIntegerField(
        default=0, help_text="The highest run id when it was last counted: the next count's end."
    )
    counted_at = models.DateTimeField(default=timezone.now)
    pending = models.JSONField(default=list, help_text="Ids of runs not finished when counted.")

    def __str__(self):
        return f"runs counted through id {self.counted_through}"
