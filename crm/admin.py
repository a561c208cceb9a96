from collections import Counter

from django.contrib import admin, messages
from django.utils import timezone
from django.utils.timesince import timesince

from crm import services
from crm.models import Ticket, TicketEvent
from crm.paginators import BoundedCountPaginator


class TicketEventInline(admin.TabularInline):
    model = TicketEvent
    fields = ["created_at", "kind", "from_status", "to_status", "to_assignee", "actor", "reason"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ["created_at", "id"]
    verbose_name_plural = "History"

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Ticket)
class TicketAdmin(admin.ModelAdmin):
    list_display = ["id", "title", "status", "priority", "assignee", "requester_name", "age"]
    list_display_links = ["id", "title"]
    # Cheap with a million tickets: no filter that scans them all for its
    # choices, no COUNT(*) over the whole table on every page.
    list_filter = ["status", "priority", "assignee"]
    show_full_result_count = False
    paginator = BoundedCountPaginator
    list_select_related = ["assignee"]
    search_fields = ["title", "requester_name", "requester_email"]
    date_hierarchy = "created_at"
    ordering = ["-created_at"]
    readonly_fields = ["status", "created_at", "updated_at", "resolved_at", "closed_at"]
    fields = [
        "title",
        "description",
        ("requester_name", "requester_email"),
        ("priority", "assignee"),
        "status",
        ("created_at", "updated_at"),
        ("resolved_at", "closed_at"),
    ]
    inlines = [TicketEventInline]
    actions = ["resolve_tickets", "close_tickets", "reopen_tickets"]
    list_per_page = 50

    @admin.display(description="Age", ordering="created_at")
    def age(self, ticket):
        return timesince(ticket.created_at, timezone.now()).split(",")[0]

    def save_model(self, request, obj, form, change):
        if not change:
            created = services.ticket_create(
                title=obj.title,
                description=obj.description,
                requester_name=obj.requester_name,
                requester_email=obj.requester_email,
                priority=obj.priority,
                assignee=obj.assignee,
                actor=request.user,
            )
            obj.pk = created.pk
            obj._state.adding = False
            return
        changes = {field: getattr(obj, field) for field in form.changed_data}
        services.ticket_update_details(ticket_id=obj.pk, actor=request.user, **changes)

    @admin.action(description="Resolve selected tickets", permissions=["change"])
    def resolve_tickets(self, request, queryset):
        self._apply(request, queryset, services.ticket_resolve, "resolved")

    @admin.action(description="Close selected tickets", permissions=["change"])
    def close_tickets(self, request, queryset):
        self._apply(request, queryset, services.ticket_close, "closed")

    @admin.action(description="Reopen selected tickets", permissions=["change"])
    def reopen_tickets(self, request, queryset):
        self._apply(request, queryset, services.ticket_reopen, "reopened")

    def _apply(self, request, queryset, service, done_word):
        changed = 0
        skipped = Counter()
        for ticket in queryset.order_by("pk").iterator(chunk_size=500):
            try:
                service(ticket=ticket, actor=request.user, reason="admin bulk action")
            except services.TicketChangedConcurrently:
                skipped["changed by someone else meanwhile"] += 1
            except services.TransitionNotAllowed as refused:
                skipped[f"{refused.from_status}, cannot be {done_word}"] += 1
            else:
                changed += 1
        self.message_user(
            request, f"{changed} ticket{'s' if changed != 1 else ''} {done_word}.", messages.SUCCESS
        )
        if skipped:
            reasons = "; ".join(f"{count} {why}" for why, count in sorted(skipped.items()))
            self.message_user(
                request, f"{sum(skipped.values())} skipped: {reasons}.", messages.WARNING
            )


from crm.scheduler import admin as scheduler_admin  # noqa: E402, F401  (jobs and runs)
