from collections import Counter
from datetime import datetime

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.views.main import PAGE_VAR
from django.forms.models import BaseInlineFormSet
from django.http import HttpResponseRedirect
from django.utils import timezone
from django.utils.timesince import timesince

from crm import services, ticket_search
from crm.models import Ticket, TicketEvent
from crm.paginators import PageWindowPaginator


class LatestEventsFormSet(BaseInlineFormSet):
    """The ticket's latest SHOWN events, oldest first: a ticket's page with a
    history of thousands renders as fast as one with a few."""

    SHOWN = 30

    def get_queryset(self):
        if not hasattr(self, "_queryset"):
            events = super().get_queryset()
            latest = events.order_by("-created_at", "-id").values_list("pk", flat=True)
            self._queryset = events.filter(pk__in=list(latest[: self.SHOWN]))
        return self._queryset


class TicketEventInline(admin.TabularInline):
    model = TicketEvent
    formset = LatestEventsFormSet
    fields = ["created_at", "kind", "from_status", "to_status", "to_assignee", "actor", "reason"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ["created_at", "id"]
    verbose_name_plural = "History"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("to_assignee", "actor")

    def get_formset(self, request, obj=None, **kwargs):
        # A new inline is made for each request, so this title is this page's.
        total = obj.events.count() if obj is not None else 0
        if total > LatestEventsFormSet.SHOWN:
            self.verbose_name_plural = (
                f"History: the latest {LatestEventsFormSet.SHOWN} of {total:,} changes"
            )
        return super().get_formset(request, obj, **kwargs)

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class ExactDateTimeField(forms.DateTimeField):
    """A hidden datetime posted back exactly: the widget's own format would
    drop the microseconds and the offset."""

    widget = forms.HiddenInput

    def prepare_value(self, value):
        return value.isoformat() if isinstance(value, datetime) else value


class TicketForm(forms.ModelForm):
    # Which version of the ticket the agent edited: saving over someone else's
    # change made meanwhile would silently undo it.
    seen_updated_at = ExactDateTimeField(required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None:
            self.fields["seen_updated_at"].initial = self.instance.updated_at

    def clean(self):
        cleaned_data = super().clean()
        seen = cleaned_data.get("seen_updated_at")
        if self.instance.pk is not None and seen != self.instance.updated_at:
            raise forms.ValidationError(str(services.TicketChangedConcurrently(self.instance)))
        return cleaned_data


@admin.register(Ticket)
class TicketAdmin(admin.ModelAdmin):
    form = TicketForm
    list_display = ["id", "title", "status", "priority", "assignee", "requester_name", "age"]
    list_display_links = ["id", "title"]
    # Cheap with a million tickets: no filter that scans them all for its
    # choices, no COUNT(*) over the whole table on every page, an index for
    # the ordering under each filter (crm.models), the date hierarchy by index
    # seeks (crm.admin_dates, through admin/crm/ticket/change_list.html) and
    # the search through trigram indexes (crm.ticket_search).
    list_filter = ["status", "priority", "assignee"]
    show_full_result_count = False
    paginator = PageWindowPaginator
    list_select_related = ["assignee"]
    search_fields = ["title", "requester_name", "requester_email"]
    date_hierarchy = "created_at"
    ordering = ["-created_at", "-id"]
    readonly_fields = ["status", "created_at", "updated_at", "resolved_at", "closed_at"]
    fields = [
        "title",
        "description",
        ("requester_name", "requester_email"),
        ("priority", "assignee"),
        "status",
        ("created_at", "updated_at"),
        ("resolved_at", "closed_at"),
        "seen_updated_at",
    ]
    inlines = [TicketEventInline]
    actions = ["resolve_tickets", "close_tickets", "reopen_tickets"]
    list_per_page = 50

    @admin.display(description="Age", ordering="created_at")
    def age(self, ticket):
        return timesince(ticket.created_at, timezone.now()).split(",")[0]

    def get_paginator(self, request, queryset, per_page, orphans=0, allow_empty_first_page=True):
        try:
            page_number = int(request.GET.get(PAGE_VAR, 1))
        except ValueError:
            page_number = 1  # as the changelist reads it
        return self.paginator(
            queryset, per_page, orphans, allow_empty_first_page, page_number=page_number
        )

    def get_search_results(self, request, queryset, search_term):
        queryset, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        return ticket_search.narrowed(queryset, search_term), may_have_duplicates

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
        services.ticket_update_details(
            ticket_id=obj.pk,
            actor=request.user,
            seen_updated_at=form.cleaned_data["seen_updated_at"],
            **changes,
        )

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except services.TicketChangedConcurrently as changed:
            # Changed after the form's own check, while saving: the edits are
            # rolled back, and the page shows the ticket as it is now.
            self.message_user(request, str(changed), messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

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


from crm.api import admin as api_admin  # noqa: E402, F401  (API tokens)
from crm.scheduler import admin as scheduler_admin  # noqa: E402, F401  (jobs and runs)
from crm.scheduler import audit_admin  # noqa: E402, F401  (the scheduler's audit trail)
