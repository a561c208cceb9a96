"""The ticket list's date hierarchy: the years, months and days Django's own
date_hierarchy offers, drilled down to a day, by index seeks."""

from datetime import UTC, datetime

import pytest
import time_machine
from django.contrib.admin.templatetags.admin_list import date_hierarchy
from django.urls import reverse

from crm import admin_dates
from crm.templatetags.ticket_admin import indexed_date_hierarchy
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def seeks_however_few_tickets(monkeypatch):
    """The index seeks even for the few tickets a test makes (below FEW_ROWS
    the list uses Django's own queries, see test_with_few_tickets_...)."""
    monkeypatch.setattr(admin_dates, "FEW_ROWS", 0)


CREATED = [
    datetime(2023, 11, 30, 23, 59, tzinfo=UTC),
    datetime(2024, 2, 29, 8, tzinfo=UTC),
    datetime(2024, 2, 29, 17, tzinfo=UTC),
    datetime(2024, 3, 1, 0, 0, tzinfo=UTC),
    datetime(2024, 12, 31, 23, 59, 59, tzinfo=UTC),
    datetime(2026, 1, 15, 12, tzinfo=UTC),
]


@pytest.fixture
def tickets():
    made = []
    for number, moment in enumerate(CREATED):
        with time_machine.travel(moment, tick=False):
            made.append(factories.ticket(title=f"Ticket {number}", priority=1 + number % 2))
    return made


def changelist(client, **params):
    response = client.get(reverse("admin:crm_ticket_changelist"), params)
    assert response.status_code == 200
    return response


def choices(hierarchy):
    return [(choice.get("link"), choice["title"]) for choice in hierarchy["choices"]]


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"created_at__year": "2024"},
        {"created_at__year": "2024", "created_at__month": "2"},
        {"created_at__year": "2024", "created_at__month": "2", "created_at__day": "29"},
        {"created_at__year": "2025"},
        {"created_at__year": "2024", "priority__exact": "2"},
        {"q": "Ticket 4"},
    ],
)
def test_it_offers_the_dates_django_offers(admin_client, tickets, params):
    cl = changelist(admin_client, **params).context["cl"]

    ours, django = indexed_date_hierarchy(cl), date_hierarchy(cl)

    assert ours == django


def test_it_offers_the_years_then_the_months_then_the_days(admin_client, tickets):
    years = indexed_date_hierarchy(changelist(admin_client).context["cl"])
    months = indexed_date_hierarchy(changelist(admin_client, created_at__year="2024").context["cl"])
    days = indexed_date_hierarchy(
        changelist(admin_client, created_at__year="2024", created_at__month="2").context["cl"]
    )

    assert [title for _, title in choices(years)] == ["2023", "2024", "2026"]
    assert [title for _, title in choices(months)] == [
        "February 2024",
        "March 2024",
        "December 2024",
    ]
    assert choices(days) == [
        ("?created_at__day=29&created_at__month=2&created_at__year=2024", "February 29")
    ]


def test_drilled_to_a_month_and_a_day_it_lists_their_tickets(admin_client, tickets):
    month = changelist(admin_client, created_at__year="2024", created_at__month="2")
    day = changelist(
        admin_client, created_at__year="2024", created_at__month="3", created_at__day="1"
    )

    assert [t.title for t in month.context["cl"].result_list] == ["Ticket 2", "Ticket 1"]
    assert [t.title for t in day.context["cl"].result_list] == ["Ticket 3"]
    assert "February 29" in month.content.decode()


def test_each_level_costs_three_queries_however_many_periods(
    admin_client, tickets, django_assert_num_queries
):
    cl = changelist(admin_client, created_at__year="2024", created_at__month="2").context["cl"]

    with django_assert_num_queries(3):  # the first row, the last, each day's first
        indexed_date_hierarchy(cl)


def test_it_offers_nothing_to_drill_into_without_tickets(admin_client):
    hierarchy = indexed_date_hierarchy(changelist(admin_client).context["cl"])

    assert hierarchy["choices"] == []


def test_with_few_tickets_it_lets_django_query_them(
    admin_client, tickets, monkeypatch, django_assert_num_queries
):
    monkeypatch.setattr(admin_dates, "FEW_ROWS", 1000)
    cl = changelist(admin_client).context["cl"]

    with django_assert_num_queries(2):  # Django's first and last, then its years
        hierarchy = indexed_date_hierarchy(cl)

    assert [title for _, title in choices(hierarchy)] == ["2023", "2024", "2026"]
