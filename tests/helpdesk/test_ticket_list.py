"""The ticket list at scale: the search through trigram indexes, the filters,
deep pages and the ticket's page with a long history show what the plain
querysets show, in a bounded number of queries."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from benchmarks.data import insert_helpdesk_tickets, insert_ticket_events
from crm import services, ticket_search
from crm.models import Ticket
from tests import factories

pytestmark = pytest.mark.django_db

NEWEST_FIRST = ["-created_at", "-id"]


def changelist(client, **params):
    response = client.get(reverse("admin:crm_ticket_changelist"), params)
    assert response.status_code == 200, response.get("Location")
    return response


def shown_ids(response):
    return [ticket.pk for ticket in response.context["cl"].result_list]


def icontains_ids(*terms):
    """What a plain icontains search finds: each term in a searched field."""
    tickets = Ticket.objects.all()
    for term in terms:
        tickets = tickets.filter(
            Q(title__icontains=term)
            | Q(requester_name__icontains=term)
            | Q(requester_email__icontains=term)
        )
    return list(tickets.order_by(*NEWEST_FIRST).values_list("pk", flat=True))


@pytest.fixture
def searchable():
    """Tickets whose titles and requesters overlap in case, substrings and quotes."""
    rows = [
        ("VPN drops every hour", "Olga Ivanova", "olga@example.com"),
        ("vpn slow", "John Smith", "john.smith@example.org"),
        ("Printer offline", "Anna Nowak", "anna@example.com"),
        ("Refund for 'Premium' plan", "Smithers Ltd", "billing@smithers.test"),
        ('Says "hello" twice', "Łukasz Żak", "lukasz@example.pl"),
        ("Ab", "Ab Cd", "ab@x.test"),
        ("Zürich office Wi-Fi", "ÉMILE Durand", "emile@example.fr"),
    ]
    for title, name, email in rows:
        factories.ticket(title=title, requester_name=name, requester_email=email)


@pytest.mark.parametrize(
    ("search", "terms"),
    [
        ("vpn", ["vpn"]),
        ("VPN", ["VPN"]),
        ("smith", ["smith"]),
        ("Smith example", ["Smith", "example"]),
        ("example.com", ["example.com"]),
        ("'every hour'", ["every hour"]),
        ('"hello"', ["hello"]),
        ("ab", ["ab"]),
        ("b", ["b"]),
        ("Ab Cd", ["Ab", "Cd"]),
        ("zürich", ["zürich"]),
        ("émile", ["émile"]),
        ("Łukasz", ["Łukasz"]),
        ("nobody-has-this", ["nobody-has-this"]),
        ("100%", ["100%"]),
        ("o_a", ["o_a"]),
    ],
)
def test_the_search_finds_what_icontains_finds(admin_client, searchable, search, terms):
    response = changelist(admin_client, q=search)

    assert shown_ids(response) == icontains_ids(*terms)


def test_on_sqlite_the_search_looks_tickets_up_in_the_trigram_table(
    admin_client, searchable, django_assert_max_num_queries
):
    if connection.vendor != "sqlite":
        pytest.skip("the trigram table is SQLite's; PostgreSQL has pg_trgm indexes")

    with django_assert_max_num_queries(14) as captured:
        response = changelist(admin_client, q="drops")

    assert len(shown_ids(response)) == 1
    assert any("crm_ticket_search MATCH" in query["sql"] for query in captured.captured_queries)


def test_on_postgresql_the_search_uses_the_trigram_indexes():
    if connection.vendor != "postgresql":
        pytest.skip("pg_trgm is PostgreSQL's")
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'crm_ticket'")
        indexes = {name for (name,) in cursor.fetchall()}
        cursor.execute("SET enable_seqscan = off")
        cursor.execute(
            "EXPLAIN SELECT id FROM crm_ticket WHERE UPPER(title::text) LIKE UPPER('%%vpn%%')"
        )
        plan = " ".join(line for (line,) in cursor.fetchall())
        cursor.execute("RESET enable_seqscan")

    assert {
        f"ticket_{c}_trgm_idx" for c in ["title", "requester_name", "requester_email"]
    } <= indexes
    assert "ticket_title_trgm_idx" in plan


def test_the_search_follows_edited_and_deleted_tickets(admin_client):
    ticket = factories.ticket(title="Keyboard sticky")
    gone = factories.ticket(title="Keyboard missing")

    services.ticket_update_details(ticket_id=ticket.pk, title="Mouse sticky")
    gone.delete()

    assert shown_ids(changelist(admin_client, q="keyboard")) == []
    assert shown_ids(changelist(admin_client, q="mouse")) == [ticket.pk]


def test_a_term_most_tickets_hold_is_found_by_the_scan_alike(admin_client, searchable, monkeypatch):
    monkeypatch.setattr(ticket_search, "COMMON", 2)

    response = changelist(admin_client, q="example")

    assert len(shown_ids(response)) == 5
    assert shown_ids(response) == icontains_ids("example")


@pytest.fixture
def many_tickets(django_user_model):
    """50,100 tickets, newest first one every 95 s up to now, over 3 agents."""
    agents = [django_user_model.objects.create_user(f"agent{n}").pk for n in range(3)]
    since = timezone.now().replace(microsecond=0) - timedelta(seconds=95 * 50_101)
    insert_helpdesk_tickets(50_100, since, 95, agents)
    return agents


@pytest.mark.parametrize(
    "filters",
    [
        {},
        {"status__exact": "open"},
        {"priority__exact": "4"},
        {"assignee__id__exact": "AGENT"},
        {"assignee__isnull": "True"},
    ],
)
def test_each_filter_shows_the_tickets_its_queryset_holds_newest_first(
    admin_client, many_tickets, filters, django_assert_max_num_queries
):
    filters = {k: many_tickets[1] if v == "AGENT" else v for k, v in filters.items()}
    lookups = {k: v == "True" if k.endswith("isnull") else v for k, v in filters.items()}
    expected = Ticket.objects.filter(**lookups).order_by(*NEWEST_FIRST)

    with django_assert_max_num_queries(12):
        response = changelist(admin_client, **filters)

    assert shown_ids(response) == list(expected.values_list("pk", flat=True)[:50])


@pytest.mark.parametrize("search", ["Client42", "printer", "CLIENT17@example", "olga client4"])
def test_the_search_over_many_tickets_finds_what_icontains_finds(
    admin_client, many_tickets, search, django_assert_max_num_queries
):
    with django_assert_max_num_queries(14):
        response = changelist(admin_client, q=search)

    assert shown_ids(response) == icontains_ids(*search.split())[:50]
    assert response.context["cl"].result_count == min(len(icontains_ids(*search.split())), 10_000)


def test_page_1000_shows_the_tickets_49951_to_50000_newest_first(
    admin_client, many_tickets, django_assert_max_num_queries
):
    expected = Ticket.objects.order_by(*NEWEST_FIRST).values_list("pk", flat=True)

    with django_assert_max_num_queries(12):
        response = changelist(admin_client, p=1000)

    assert shown_ids(response) == list(expected[49_950:50_000])
    cl = response.context["cl"]
    assert cl.page_num == 1000
    assert 'class="this-page">1000<' in response.content.decode()


def test_a_page_past_the_end_is_refused_as_django_refuses_it(admin_client, many_tickets):
    response = admin_client.get(reverse("admin:crm_ticket_changelist"), {"p": 1003})

    assert response.status_code == 302
    assert response["Location"].endswith("?e=1")


def ticket_page(client, ticket):
    response = client.get(reverse("admin:crm_ticket_change", args=[ticket.pk]))
    assert response.status_code == 200
    return response


def test_a_long_history_shows_its_latest_30_changes_oldest_first(admin_client):
    ticket = factories.ticket("open")  # two events: created, opened
    insert_ticket_events(ticket.pk, 118, datetime.now(UTC) + timedelta(minutes=1))

    response = ticket_page(admin_client, ticket)

    (history,) = response.context["inline_admin_formsets"]
    shown = [form.instance for form in history.formset.forms]
    latest = ticket.events.order_by("-created_at", "-id")[:30]
    assert [event.pk for event in shown] == [event.pk for event in reversed(latest)]
    assert "History: the latest 30 of 120 changes" in response.content.decode()


def test_the_ticket_page_costs_as_many_queries_with_2000_events_as_with_2(
    admin_client, django_assert_max_num_queries
):
    short = factories.ticket("open")
    long = factories.ticket("open")
    insert_ticket_events(long.pk, 2000, datetime.now(UTC) + timedelta(minutes=1))

    with django_assert_max_num_queries(10) as short_queries:
        ticket_page(admin_client, short)
    with django_assert_max_num_queries(10) as long_queries:
        ticket_page(admin_client, long)

    assert len(long_queries) <= len(short_queries) + 1  # the count of its events
