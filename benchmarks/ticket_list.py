"""The admin's ticket list and ticket page with 1,000,000 tickets: each page
through Django's full request path in this process (a logged-in superuser,
django.test.Client), against the same pages of a stock ModelAdmin with the same
columns, filters, search and date hierarchy (Django's own paginator, COUNT(*)
and date queries) on an AdminSite of its own, measured in the same run."""

import statistics
import time
from datetime import timedelta

from django.contrib import admin
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext, override_settings
from django.urls import path, reverse
from django.utils import timezone

from benchmarks.data import REQUESTERS, insert_helpdesk_tickets, insert_ticket_events
from benchmarks.dispatch import percentile_99
from benchmarks.report import Figure
from crm.admin import TicketAdmin, TicketEventInline
from crm.models import Ticket, TicketEvent

TICKETS = 1_000_000
EVERY_SECONDS = 95  # a million tickets over about three years
AGENTS = 20
HISTORY = 2_000  # events of the ticket whose page is measured
REQUESTS = 30  # per page, at most
SECONDS_PER_PAGE = 12  # ... or fewer requests once this is spent (at least MIN_REQUESTS)
MIN_REQUESTS = 5
TARGET_MS = {"list": 150, "search": 300, "change": 100}


class StockTicketEventInline(admin.TabularInline):
    model = TicketEvent
    fields = TicketEventInline.fields
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ["created_at", "id"]

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class StockTicketAdmin(admin.ModelAdmin):
    """The ticket admin as Django does it out of the box."""

    change_list_template = "admin/change_list.html"  # not crm's ticket list template
    list_display = TicketAdmin.list_display
    list_filter = TicketAdmin.list_filter
    list_select_related = TicketAdmin.list_select_related
    list_per_page = TicketAdmin.list_per_page
    search_fields = TicketAdmin.search_fields
    date_hierarchy = "created_at"
    ordering = ["-created_at"]
    fields = TicketAdmin.fields[:-1]
    readonly_fields = TicketAdmin.readonly_fields
    inlines = [StockTicketEventInline]
    age = TicketAdmin.age


reference_site = admin.AdminSite(name="reference")
reference_site.register(Ticket, StockTicketAdmin)
urlpatterns = [path("admin/", admin.site.urls), path("reference/", reference_site.urls)]


def run(sizes: list[int]) -> list[Figure]:
    agents, long_history = fill()
    client = Client()
    client.force_login(User.objects.get(username="bench-admin"))
    middle = timezone.localtime(timezone.now() - timedelta(seconds=TICKETS * EVERY_SECONDS // 2))
    pages = [
        ("list", "the list, newest first (page 1)", "changelist", {}),
        ("list", "filtered by status (open)", "changelist", {"status__exact": "open"}),
        ("list", "filtered by priority (urgent)", "changelist", {"priority__exact": "4"}),
        ("list", "filtered by assignee", "changelist", {"assignee__id__exact": agents[3]}),
        (
            "list",
            "date hierarchy drilled to a month",
            "changelist",
            {"created_at__year": middle.year, "created_at__month": middle.month},
        ),
        ("list", "page 1,000", "changelist", {"p": 1000}),
        ("search", "search by title (a word in 1 ticket of 16)", "changelist", {"q": "printer"}),
        (
            "search",
            f"search by requester (one of {REQUESTERS:,}: ~100 tickets)",
            "changelist",
            {"q": "Client4217"},
        ),
        ("change", f"a ticket's page, {HISTORY:,} history rows", "change", {}),
    ]
    figures = []
    try:
        with override_settings(ROOT_URLCONF=__name__, ALLOWED_HOSTS=["testserver"]):
            for kind, what, view, params in pages:
                args = [long_history] if view == "change" else []
                ours = reverse(f"admin:crm_ticket_{view}", args=args)
                stock = reverse(f"reference:crm_ticket_{view}", args=args)
                figures += page_figures(kind, what, client, (ours, stock), params)
            figures += query_figures(client, long_history)
    finally:
        clear()
    return figures


def fill() -> tuple[list[int], int]:
    """TICKETS tickets up to now, AGENTS agents, the superuser bench-admin, and
    HISTORY events on the newest ticket; returns the agents' ids and that ticket's."""
    clear()
    User.objects.create_superuser("bench-admin", "admin@example.com", "bench")
    agents = [User.objects.create_user(f"agent{n}").pk for n in range(AGENTS)]
    since = timezone.now().replace(microsecond=0) - timedelta(seconds=TICKETS * EVERY_SECONDS)
    insert_helpdesk_tickets(TICKETS, since, EVERY_SECONDS, agents)
    newest = Ticket.objects.order_by("-created_at", "-id").values_list("id", flat=True)[0]
    insert_ticket_events(newest, HISTORY, since)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            # What autovacuum does to a table of this size in production.
            cursor.execute("VACUUM ANALYZE crm_ticket")
            cursor.execute("VACUUM ANALYZE crm_ticketevent")
    return agents, newest


def clear() -> None:
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM crm_ticketevent")
        cursor.execute("DELETE FROM crm_ticket")
    User.objects.filter(username__in=["bench-admin"]).delete()
    User.objects.filter(username__startswith="agent").delete()


def latencies(client: Client, url: str, params: dict) -> list[float]:
    """Milliseconds per GET, after one unmeasured request."""
    fetch(client, url, params)
    times = []
    budget = time.monotonic() + SECONDS_PER_PAGE
    while len(times) < REQUESTS and (len(times) < MIN_REQUESTS or time.monotonic() < budget):
        started = time.perf_counter()
        fetch(client, url, params)
        times.append((time.perf_counter() - started) * 1000)
    return times


def fetch(client: Client, url: str, params: dict) -> None:
    response = client.get(url, params)
    if response.status_code != 200:
        raise RuntimeError(f"GET {url} {params}: {response.status_code}")


def page_figures(kind: str, what: str, client: Client, urls: tuple, params: dict) -> list[Figure]:
    ours, stock = (latencies(client, url, params) for url in urls)
    counts = f"{len(ours)} and {len(stock)} requests"
    size = f"{TICKETS:,} tickets"
    p99, stock_p99 = percentile_99(ours), percentile_99(stock)
    return [
        Figure(
            benchmark="ticket list",
            measure=f"{what} p50: {size} ({counts})",
            ours=statistics.median(ours),
            unit="ms",
            reference=statistics.median(stock),
            reference_name="stock ModelAdmin",
        ),
        Figure(
            benchmark="ticket list",
            measure=f"{what} p99: {size} ({counts})",
            ours=p99,
            unit="ms",
            reference=stock_p99,
            reference_name="stock ModelAdmin",
            target=f"< {TARGET_MS[kind]} ms",
            met=p99 < TARGET_MS[kind],
        ),
    ]


def query_figures(client: Client, long_history: int) -> list[Figure]:
    figures = []
    for what, view, args in [
        ("the list (page 1)", "changelist", []),
        (f"a ticket's page ({HISTORY:,} history rows)", "change", [long_history]),
    ]:
        counted = []
        for site in ("admin", "reference"):
            with CaptureQueriesContext(connection) as queries:
                fetch(client, reverse(f"{site}:crm_ticket_{view}", args=args), {})
            counted.append(len(queries))
        figures.append(
            Figure(
                benchmark="ticket list",
                measure=f"queries per page: {what}",
                ours=counted[0],
                unit="queries",
                reference=counted[1],
                reference_name="stock ModelAdmin",
            )
        )
    return figures
