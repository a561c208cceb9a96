"""The audit trail in the admin (Helpdesk → scheduler audit entries): every
request to operate the scheduler, read-only, filterable by source, action,
outcome, job and date. Viewing it needs `crm.view_auditentry`."""

from django.contrib import admin
from django.db.models import Q
from django.utils.html import format_html

from crm.paginators import BoundedCountPaginator
from crm.scheduler.admin import badge
from crm.scheduler.models import AuditEntry

OUTCOMES = {
    # A request sent as a command ends as the command does.
    "succeeded": Q(command__isnull=True, succeeded=True) | Q(command__succeeded=True),
    "failed": Q(command__isnull=True, succeeded=False) | Q(command__succeeded=False),
    "pending": Q(command__isnull=True, succeeded__isnull=True)
    | Q(command__isnull=False, command__succeeded__isnull=True),
}
OUTCOME_COLOURS = {True: "#2e7d32", False: "#c62828", None: "#757575"}


class OutcomeFilter(admin.SimpleListFilter):
    title = "outcome"
    parameter_name = "outcome"

    def lookups(self, request, model_admin):
        return [(name, name) for name in OUTCOMES]

    def queryset(self, request, queryset):
        return queryset.filter(OUTCOMES[self.value()]) if self.value() in OUTCOMES else queryset


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    list_display = ["at", "requested_by", "source", "action", "job_id", "details", "result"]
    list_filter = [
        "source",
        "action",
        OutcomeFilter,
        "job_id",
        ("at", admin.DateFieldListFilter),
    ]
    search_fields = ["requested_by", "job_id", "details"]
    list_select_related = ["command"]
    ordering = ["-at", "-id"]
    paginator = BoundedCountPaginator
    show_full_result_count = False
    fields = ["at", "requested_by", "source", "action", "job_id", "details", "result", "command"]
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="Outcome")
    def result(self, entry):
        succeeded = entry.final_succeeded
        word = {True: "succeeded", False: "failed", None: "pending"}[succeeded]
        return format_html("{} {}", badge(word, OUTCOME_COLOURS[succeeded]), entry.final_outcome)
