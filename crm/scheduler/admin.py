"""The scheduler in the Django admin, under django-apscheduler's own section
(Django APScheduler → jobs, job executions), replacing its admin classes.

Actions never wait for a job: run now, pause and resume go through
crm.scheduler.control (to the active scheduler, or to the job store when none
is active), and the page returns at once with one summary message. So does a
job's Backfill page: it shows the plan, and on confirm queues the backfill for
the active scheduler, which runs its fires.
"""

import json
import re

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.contrib.admin.utils import display_for_value, quote, unquote
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.core.serializers.json import DjangoJSONEncoder
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import escape, format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.text import Truncator
from django.utils.timesince import timesince, timeuntil
from django_apscheduler.models import DjangoJob, DjangoJobExecution

from crm.paginators import BoundedCountPaginator
from crm.scheduler import backfill, commands, control, dashboard, history, serializers, status
from crm.scheduler.history import detail_of
from crm.scheduler.models import RunAttempt

RECENT_RUNS = 20
DASHBOARD_PAGE_SIZE = 100
FIRES_SHOWN = 50  # of a backfill's plan
ERROR_SHOWN = 80  # characters of a run's error on the executions list

for model in (DjangoJob, DjangoJobExecution):
    if admin.site.is_registered(model):
        admin.site.unregister(model)
STATUS_COLOURS = {
    history.SUCCEEDED: "#2e7d32",
    history.FAILED: "#c62828",
    history.INTERRUPTED: "#c62828",
    history.TIMED_OUT: "#c62828",
    history.RETRYING: "#ef6c00",
    history.QUEUED: "#757575",
    history.RUNNING: "#1565c0",
    history.MISSED: "#ef6c00",
    history.SKIPPED: "#757575",
}


def badge(text: str, colour: str):
    return format_html(
        '<span style="background:{};color:#fff;padding:1px 6px;border-radius:8px;'
        'white-space:nowrap">{}</span>',
        colour,
        text,
    )


def status_badge(execution):
    if execution is None:
        return "never"
    label = "running" if execution.status == history.RUNNING else execution.status
    return badge(label, STATUS_COLOURS.get(execution.status, "#757575"))


def breakable(name: str):
    """`name` allowed to wrap after each _ . or -: long job ids in narrow
    columns, without breaking words anywhere else."""
    parts = re.split(r"(?<=[_.-])", name)
    return format_html_join(mark_safe("<wbr>"), "{}", ((part,) for part in parts))


def requester(request) -> str:
    return f"admin: {request.user.get_username()}"


def local_time(moment) -> str:
    return f"{timezone.localtime(moment):%Y-%m-%d %H:%M:%S %Z}"


class JobActionForm(ActionForm):
    """The action bar of the jobs page, with what a pause may say."""

    until = forms.DateTimeField(
        required=False,
        label="Pause until",
        help_text="e.g. 2026-12-24 08:00 (your time zone); empty: until resumed",
    )
    note = forms.CharField(required=False, max_length=500, label="Note")


class BackfillForm(forms.Form):
    start = forms.DateTimeField(
        label="From", help_text="The range's first fire time, e.g. 2026-11-01 00:00."
    )
    end = forms.DateTimeField(
        label="To", help_text="The range's last fire time (included), e.g. 2026-11-30 23:59."
    )
    force = forms.BooleanField(
        required=False,
        label="Force",
        help_text="Also for a job that does not take its fire time (each fire then does "
        f"the same work), or for more than {backfill.MAX_FIRES:,} fires.",
    )


# How a backfill refusal names this page's inputs (crm.scheduler.backfill).
BACKFILL_WORDING = backfill.Wording(
    start="From",
    end="To",
    force="tick Force",
    run_once='Run it once with the action "Run selected jobs now"',
)


class JobChangeList(ChangeList):
    def get_results(self, request):
        super().get_results(request)
        # One pass for the page's jobs: states, last runs and recent runs in
        # two queries (crm.scheduler.status), not several per row; only the
        # page's, so the page costs the same with 10,000 jobs as with 10.
        job_ids = [job.id for job in self.result_list]
        page_states = status.job_states(recent_runs=RECENT_RUNS, job_ids=job_ids)
        states = {state.id: state for state in page_states}
        for job in self.result_list:
            job.state = states.get(job.id)


@admin.register(DjangoJob)
class ScheduledJobAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "schedule",
        "next_run",
        "last_run",
        "last_duration",
        "success_rate",
        "recent_runs",
        "flags",
    ]
    ordering = ["id"]
    show_full_result_count = False
    actions = ["run_now", "pause", "resume", "skip"]
    action_form = JobActionForm
    fields = [
        "id",
        "schedule",
        "run_policy",
        "next_run",
        "last_run",
        "recent_runs",
        "flags",
        "as_json",
    ]
    readonly_fields = fields
    search_fields = ["id"]
    change_form_template = "crm/scheduler_job_change_form.html"
    change_list_template = "crm/scheduler_job_change_list.html"

    def get_changelist(self, request, **kwargs):
        return JobChangeList

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_run_permission(self, request):
        return request.user.has_perm("django_apscheduler.run_djangojob")

    def has_pause_permission(self, request):
        return request.user.has_perm("django_apscheduler.pause_djangojob")

    def has_resume_permission(self, request):
        return request.user.has_perm("django_apscheduler.resume_djangojob")

    def get_object(self, request, object_id, from_field=None):
        job = super().get_object(request, object_id, from_field)
        if job is not None:
            states = status.job_states(recent_runs=RECENT_RUNS, job_ids=[job.id])
            job.state = next(iter(states), None)
        return job

    def get_urls(self):
        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        dashboard_page = path(
            "dashboard/",
            self.admin_site.admin_view(self.dashboard_view),
            name=f"{prefix}_dashboard",
        )
        backfill_page = path(
            "<path:object_id>/backfill/",
            self.admin_site.admin_view(self.backfill_view),
            name=f"{prefix}_backfill",
        )
        return [dashboard_page, backfill_page, *super().get_urls()]

    def dashboard_view(self, request):
        """Every job at a glance, a page of them at a time: a handful of
        queries whatever the number of jobs or runs (crm.scheduler.dashboard)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        stored = DjangoJob.objects.only("id", "next_run_time").order_by("id")
        page = Paginator(stored, DASHBOARD_PAGE_SIZE).get_page(request.GET.get("p"))
        jobs = list(page.object_list)
        job_ids = [job.id for job in jobs]
        states = {
            state.id: state for state in status.job_states(recent_runs=RECENT_RUNS, job_ids=job_ids)
        }
        days = dashboard.daily_runs(job_ids)
        rows = [self._dashboard_row(job, states.get(job.id), days[job.id]) for job in jobs]
        context = {
            **self.admin_site.each_context(request),
            "title": "Scheduler dashboard",
            "subtitle": None,
            "opts": self.opts,
            "rows": rows,
            "page": page,
            "days": dashboard.DAYS,
            "recent_runs": RECENT_RUNS,
            "outcome_colours": dashboard.OUTCOME_COLOURS,
        }
        return TemplateResponse(request, "crm/scheduler_dashboard.html", context)

    def _dashboard_row(self, job, state, job_days) -> dict:
        job.state = state
        rate = job_days.success_rate
        lateness = dashboard.lateness_p95(state.recent) if state else None
        return {
            "id": job.id,
            "name": breakable(job.id),
            "url": reverse(
                f"admin:{self.opts.app_label}_{self.opts.model_name}_change",
                args=[quote(job.pk)],
                current_app=self.admin_site.name,
            ),
            "schedule": state.declaration.describe_schedule()
            if state and state.declaration
            else "No longer declared",
            "state": self.flags(job),
            "next_run": self.next_run(job),
            "strip": dashboard.strip(job_days),
            "success": f"{100 * rate[0] // rate[1]}% of {rate[1]}" if rate else None,
            "lateness": f"{lateness[0]:.2f} s ({lateness[1]} runs)" if lateness else None,
        }

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {"can_backfill": self.has_run_permission(request), **(extra_context or {})}
        return super().change_view(request, object_id, form_url, extra_context)

    def backfill_view(self, request, object_id):
        """The form; its first submit shows the plan (nothing runs), the
        confirm button queues the backfill for the active scheduler."""
        if not self.has_run_permission(request):
            raise PermissionDenied
        job = self.get_object(request, unquote(object_id))
        if job is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        form = BackfillForm(request.POST if request.method == "POST" else None)
        plan = None
        if form.is_valid():
            start, end, force = (form.cleaned_data[name] for name in ("start", "end", "force"))
            try:
                if "confirm" in request.POST:
                    # Queued, never run here: a backfill may take hours.
                    plan, command = control.request_backfill(
                        job.id,
                        start,
                        end,
                        requester(request) + " (backfill)",
                        force=force,
                        wording=BACKFILL_WORDING,
                        source=control.Source.ADMIN,
                    )
                    self.message_user(request, backfill_requested(plan, command, start, end))
                    return redirect(
                        reverse(
                            f"admin:{self.opts.app_label}_{self.opts.model_name}_change",
                            args=[quote(job.pk)],
                            current_app=self.admin_site.name,
                        )
                    )
                plan = backfill.plan(job.id, start, end, force=force, wording=BACKFILL_WORDING)
            except backfill.BackfillRefused as refusal:
                form.add_error(None, str(refusal))
        declaration = job.state.declaration if job.state else None
        context = {
            **self.admin_site.each_context(request),
            "title": f"Backfill {job.id}",
            "subtitle": None,
            "opts": self.opts,
            "job": job,
            "schedule": declaration.describe_schedule() if declaration else "no longer declared",
            "time_zone": timezone.get_current_timezone_name(),
            "form": form,
            "plan": plan,
            "fires_shown": [local_time(fire) for fire in plan.fires[:FIRES_SHOWN]] if plan else [],
            "fires_not_shown": max(0, len(plan.fires) - FIRES_SHOWN) if plan else 0,
        }
        return TemplateResponse(request, "crm/scheduler_backfill.html", context)

    @admin.display(description="Schedule")
    def schedule(self, job):
        declaration = job.state.declaration if job.state else None
        if declaration is None:
            return "No longer declared"
        return format_html(
            "{}<br><code>{}</code>", declaration.describe_schedule(), declaration.schedule
        )

    @admin.display(description="Runs")
    def run_policy(self, job):
        declaration = job.state.declaration if job.state else None
        return declaration.describe_policy() if declaration else None

    @admin.display(description="Next run", ordering="next_run_time")
    def next_run(self, job):
        if job.next_run_time is None:
            return badge("paused", "#757575")
        now = timezone.now()
        relative = (
            f"in {timeuntil(job.next_run_time, now)}"
            if job.next_run_time >= now
            else f"{timesince(job.next_run_time, now)} ago"
        )
        local = timezone.localtime(job.next_run_time)
        return format_html("{}<br><small>{}</small>", f"{local:%Y-%m-%d %H:%M:%S %Z}", relative)

    @admin.display(description="Last run")
    def last_run(self, job):
        last = job.state.last_run if job.state else None
        if last is None:
            return "never"
        return format_html(
            "{} {}", status_badge(last), f"{timezone.localtime(last.run_time):%Y-%m-%d %H:%M}"
        )

    @admin.display(description="Last duration")
    def last_duration(self, job):
        last = job.state.last_finished if job.state else None
        return f"{last.duration} s" if last and last.duration is not None else None

    @admin.display(description=f"Success (last {RECENT_RUNS})")
    def success_rate(self, job):
        finished = [run for run in job.state.recent if run.status != history.RUNNING]
        if not finished:
            return None
        succeeded = sum(run.status == history.SUCCEEDED for run in finished)
        return f"{100 * succeeded // len(finished)}% of {len(finished)}"

    @admin.display(description="Recent runs")
    def recent_runs(self, job):
        return run_chart(list(reversed(job.state.recent)) if job.state else [])

    @admin.display(description="State")
    def flags(self, job):
        data = serializers.job_state(job.state) if job.state else None
        if data is None or not data["declared"]:
            return badge("not declared", "#757575")
        words = [("late", "#ef6c00")] if data["late"] else []
        words += [("failing", "#c62828")] if data["failing"] else []
        words += [("running", "#1565c0")] if data["running"] else []
        words += [("retrying", "#ef6c00")] if data["retrying"] else []
        words += [("done", "#2e7d32")] if data["done"] else []
        shown = format_html_join(" ", "{}", ((badge(*word),) for word in words))
        if data["pause"] is not None:
            return format_html("{} {}", badge(*pause_words(data["pause"])), shown)
        return shown or "ok"

    @admin.display(description="As JSON")
    def as_json(self, job):
        """The job's state as `scheduler status --json` and /health/scheduler/ give it."""
        if job.state is None:
            return None
        text = json.dumps(serializers.job_state(job.state), cls=DjangoJSONEncoder, indent=2)
        return format_html("<pre>{}</pre>", text)

    @admin.action(description="Run selected jobs now", permissions=["run"])
    def run_now(self, request, queryset):
        self._operate(request, queryset, control.Action.RUN)

    @admin.action(
        description="Pause selected jobs (until the time given, if any)", permissions=["pause"]
    )
    def pause(self, request, queryset):
        # The admin has validated the action bar (JobActionForm) already.
        form = JobActionForm(request.POST)
        form.fields.pop("action")
        form.is_valid()
        until, note = form.cleaned_data["until"], form.cleaned_data["note"]
        if until is not None and until <= timezone.now():
            self.message_user(
                request, "Nothing paused: the pause's end must be in the future.", messages.ERROR
            )
            return
        self._operate(request, queryset, control.Action.PAUSE, until=until, note=note)

    @admin.action(description="Resume selected jobs", permissions=["resume"])
    def resume(self, request, queryset):
        self._operate(request, queryset, control.Action.RESUME)

    @admin.action(description="Skip the next fire of selected jobs", permissions=["pause"])
    def skip(self, request, queryset):
        self._operate(request, queryset, control.Action.SKIP)

    def _operate(self, request, queryset, action, **options) -> None:
        """One summary message, without waiting for any job."""
        job_ids = list(queryset.order_by("id").values_list("id", flat=True))
        operations = control.operate(
            action, job_ids, requester(request), source=control.Source.ADMIN, **options
        )
        summary, level = summarize(action, operations, control.active_scheduler() is not None)
        self.message_user(request, summary, level)


def backfill_requested(plan: backfill.Plan, command, start, end) -> str:
    """The admin's one message once a backfill is confirmed."""
    span = f"from {local_time(start)} to {local_time(end)}"
    if command is None:
        return f"Nothing to backfill: every fire of {plan.job_id} {span} has run already."
    where = (
        "the active scheduler runs them one at a time; they show in the job executions as they run"
        if control.active_scheduler() is not None
        else "no scheduler is active now; the first to start within "
        f"{commands.EXPIRY.seconds // 60} minutes runs them"
    )
    return (
        f"Backfill of {plan.job_id} requested: {len(plan.fires):,} fires {span} "
        f"({plan.already_run:,} of the range already run; {where})."
    )


def pause_words(pause: dict) -> tuple[str, str]:
    until = pause["until"]
    text = f"paused until {timezone.localtime(until):%Y-%m-%d %H:%M}" if until else "paused"
    text += f" by {pause['by']}" + (f": {pause['note']}" if pause["note"] else "")
    return text, "#757575"


def summarize(action, operations: list[control.Operation], active: bool) -> tuple[str, int]:
    """The admin's one message for an action on several jobs, and its level."""
    by_state = {}
    for operation in operations:
        by_state.setdefault(operation.state, []).append(operation)
    parts = []
    done = [op.job_id for op in by_state.get(control.DONE, [])]
    queued = [op.job_id for op in by_state.get(control.QUEUED, [])]
    if action == control.Action.RUN and queued:
        where = (
            "it shows in the job executions within seconds"
            if active
            else "no scheduler is active now; the first to start within 5 minutes runs it"
        )
        parts.append(f"Run requested: {', '.join(queued)} ({where}).")
    elif queued:
        parts.append(
            f"{action.capitalize()} of {', '.join(queued)} requested; the active scheduler "
            "applies it within seconds."
        )
    if done:
        past = {"pause": "Paused", "resume": "Resumed", "skip": "Skipped"}.get(action, "Done")
        parts.append(f"{past}: {', '.join(done)} (in the job store; no scheduler is active).")
    failed = by_state.get(control.FAILED, [])
    parts += [f"{op.job_id}: {op.message}" for op in failed]
    if not failed:
        return " ".join(parts), messages.SUCCESS
    return " ".join(parts), messages.ERROR if len(failed) == len(operations) else messages.WARNING


def run_chart(runs, width=6, gap=2, height=24):
    """Recent runs as inline SVG bars, oldest first: height by duration,
    colour by outcome; hover for the details."""
    if not runs:
        return None
    longest = max((float(run.duration or 0) for run in runs), default=0) or 1
    bars = []
    for index, run in enumerate(runs):
        bar = max(2, round(height * float(run.duration or 0) / longest))
        label = f"{timezone.localtime(run.run_time):%Y-%m-%d %H:%M} {run.status}"
        if run.duration is not None:
            label += f", {run.duration} s"
        colour = STATUS_COLOURS.get(run.status, "#757575")
        # Numbers and our own colours, with only the label escaped: a page of
        # 100 jobs draws 2,000 bars, too many for format_html each.
        bars.append(
            f'<rect x="{index * (width + gap)}" y="{height - bar}" width="{width}" '
            f'height="{bar}" fill="{colour}"><title>{escape(label)}</title></rect>'
        )
    return mark_safe(
        f'<svg width="{len(runs) * (width + gap)}" height="{height}" role="img" '
        f'aria-label="recent runs">{"".join(bars)}</svg>'
    )


class StatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [(value, value) for value in history.STATUSES]

    def queryset(self, request, queryset):
        return queryset.filter(status=self.value()) if self.value() else queryset


class JobFilter(admin.RelatedFieldListFilter):
    """By job, each named by its id (a job's own name carries its next run time)."""

    def field_choices(self, field, request, model_admin):
        return [
            (job_id, job_id)
            for job_id in DjangoJob.objects.order_by("id").values_list("id", flat=True)
        ]


class AttemptInline(admin.TabularInline):
    """The attempts of a fire of a job with retries: who ran each, how it ended."""

    model = RunAttempt
    fields = ["number", "status", "started_at", "duration", "host", "pid", "error"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(DjangoJobExecution)
class JobExecutionAdmin(admin.ModelAdmin):
    inlines = [AttemptInline]
    list_display = [
        "fire",
        "job_link",
        "status_badge",
        "lateness",
        "duration_text",
        "triggered_by",
        "error",
    ]
    list_display_links = ["fire"]
    list_filter = [("job", JobFilter), StatusFilter, ("run_time", admin.DateFieldListFilter)]
    list_select_related = ["detail"]
    ordering = ["-run_time"]
    paginator = BoundedCountPaginator
    show_full_result_count = False
    fields = [
        "job",
        "status",
        "run_time",
        "started",
        "lateness",
        "duration_text",
        "triggered_by",
        "process",
        "result",
        "exception",
        "traceback_text",
    ]
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def _shown(self, value):
        # Read-only fields print a method's value as it is ("None", a raw
        # datetime); the admin's own fields show "-" and a formatted date.
        return display_for_value(value, self.get_empty_value_display())

    @admin.display(description="Fire time", ordering="run_time")
    def fire(self, execution):
        return f"{timezone.localtime(execution.run_time):%Y-%m-%d %H:%M:%S}"

    @admin.display(description="Job", ordering="job_id")
    def job_link(self, execution):
        url = reverse(
            f"admin:{DjangoJob._meta.app_label}_{DjangoJob._meta.model_name}_change",
            args=[quote(execution.job_id)],
            current_app=self.admin_site.name,
        )
        return format_html('<a href="{}">{}</a>', url, breakable(execution.job_id))

    @admin.display(description="Status", ordering="status")
    def status_badge(self, execution):
        return status_badge(execution)

    @admin.display(description="Started")
    def started(self, execution):
        detail = detail_of(execution)
        return self._shown(detail.started_at if detail else None)

    @admin.display(description="Late by")
    def lateness(self, execution):
        detail = detail_of(execution)
        if detail is None:
            return self._shown(None)
        seconds = (detail.started_at - execution.run_time).total_seconds()
        return f"{max(seconds, 0):.1f} s"

    @admin.display(description="Duration", ordering="duration")
    def duration_text(self, execution):
        return self._shown(f"{execution.duration} s" if execution.duration is not None else None)

    @admin.display(description="Triggered by")
    def triggered_by(self, execution):
        detail = detail_of(execution)
        return self._shown(detail.triggered_by if detail else None)

    @admin.display(description="Process")
    def process(self, execution):
        detail = detail_of(execution)
        return self._shown(f"host {detail.host}, pid {detail.pid}" if detail else None)

    @admin.display(description="Result")
    def result(self, execution):
        detail = detail_of(execution)
        return self._shown(detail.result if detail else None)

    @admin.display(description="Error")
    def error(self, execution):
        if not execution.exception:
            return ""
        # Long messages are cut on the list; the run's own page has all of it.
        shown = Truncator(execution.exception).chars(ERROR_SHOWN)
        return format_html(
            '<span title="{}" style="overflow-wrap:anywhere">{}</span>', execution.exception, shown
        )

    @admin.display(description="Traceback")
    def traceback_text(self, execution):
        if not execution.traceback:
            return self._shown(None)
        return format_html('<pre style="white-space:pre-wrap">{}</pre>', execution.traceback)
