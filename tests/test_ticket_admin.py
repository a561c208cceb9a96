"""The ticket admin: list, search, filters, history, and bulk actions that go
through the services and say what they changed and what they skipped."""

import pytest
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.urls import reverse

from crm import services
from crm.models import Ticket, TicketEvent

pytestmark = pytest.mark.django_db
CHANGELIST = reverse("admin:crm_ticket_changelist")


def make(title="Printer offline", requester="Anna Nowak", path=()):
    ticket = services.ticket_create(
        title=title, requester_name=requester, requester_email="someone@example.com"
    )
    for step in path:
        services.ticket_transition(ticket=ticket, to_status=step)
    return ticket


def act(client, action, tickets):
    response = client.post(
        CHANGELIST,
        {"action": action, "_selected_action": [ticket.pk for ticket in tickets]},
        follow=True,
    )
    assert response.status_code == 200
    return [str(message) for message in get_messages(response.wsgi_request)]


def test_the_list_shows_status_priority_assignee_and_age(admin_client):
    make()

    page = admin_client.get(CHANGELIST).content.decode()

    for column in ["column-status", "column-priority", "column-assignee", "column-age"]:
        assert column in page
    assert "Printer offline" in page
    assert "created_at__year=" in page  # the date hierarchy


def test_search_finds_tickets_by_title_and_requester(admin_client):
    make(title="VPN drops", requester="Olga Ivanova")
    make(title="Refund missing", requester="John Smith")

    by_title = admin_client.get(CHANGELIST, {"q": "VPN"}).context["cl"].result_list
    by_requester = admin_client.get(CHANGELIST, {"q": "Smith"}).context["cl"].result_list

    assert [ticket.title for ticket in by_title] == ["VPN drops"]
    assert [ticket.title for ticket in by_requester] == ["Refund missing"]


def test_the_status_filter_narrows_the_list(admin_client):
    make(title="Fresh")
    make(title="Working", path=["open"])

    result = admin_client.get(CHANGELIST, {"status__exact": "open"}).context["cl"].result_list

    assert [ticket.title for ticket in result] == ["Working"]


def test_bulk_resolve_changes_what_it_can_and_says_what_it_skipped_and_why(
    admin_client, admin_user
):
    working = make(path=["open"])
    waiting = make(path=["open", "pending"])
    closed = make(path=["open", "resolved", "closed"])
    fresh = make()

    messages = act(admin_client, "resolve_tickets", [working, waiting, closed, fresh])

    assert messages == [
        "2 tickets resolved.",
        "2 skipped: 1 closed, cannot be resolved; 1 new, cannot be resolved.",
    ]
    statuses = dict(Ticket.objects.values_list("pk", "status"))
    assert [statuses[t.pk] for t in (working, waiting, closed, fresh)] == [
        "resolved",
        "resolved",
        "closed",
        "new",
    ]
    resolved_events = TicketEvent.objects.filter(to_status="resolved", actor=admin_user)
    assert sorted(resolved_events.values_list("ticket_id", flat=True)) == sorted(
        [working.pk, waiting.pk]
    )


def test_bulk_close_and_reopen(admin_client):
    done = make(path=["open", "resolved"])
    also_done = make(path=["open", "resolved"])

    assert act(admin_client, "close_tickets", [done]) == ["1 ticket closed."]
    assert act(admin_client, "reopen_tickets", [done, also_done]) == [
        "1 ticket reopened.",
        "1 skipped: 1 closed, cannot be reopened.",
    ]
    assert Ticket.objects.get(pk=also_done.pk).status == "open"


def test_adding_a_ticket_in_the_admin_records_who_created_it(admin_client, admin_user):
    response = admin_client.post(
        reverse("admin:crm_ticket_add"),
        {
            "title": "New laptop",
            "description": "",
            "requester_name": "Sara Rossi",
            "requester_email": "sara@example.com",
            "priority": 3,
            "assignee": "",
            "events-TOTAL_FORMS": 0,
            "events-INITIAL_FORMS": 0,
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    ticket = Ticket.objects.get(title="New laptop")
    assert list(ticket.events.values_list("to_status", "actor", "reason")) == [
        ("new", admin_user.pk, "created")
    ]


def test_changing_the_assignee_is_recorded_and_status_cannot_be_edited(admin_client, admin_user):
    ticket = make()
    response = admin_client.post(
        reverse("admin:crm_ticket_change", args=[ticket.pk]),
        {
            "title": ticket.title,
            "description": "",
            "requester_name": ticket.requester_name,
            "requester_email": ticket.requester_email,
            "priority": ticket.priority,
            "assignee": admin_user.pk,
            "status": "closed",
            "events-TOTAL_FORMS": 0,
            "events-INITIAL_FORMS": 0,
        },
    )
    assert response.status_code == 302
    stored = Ticket.objects.get(pk=ticket.pk)
    assert (stored.assignee, stored.status) == (admin_user, "new")
    assert ticket.events.filter(
        kind="assignment", to_assignee=admin_user, actor=admin_user
    ).exists()


def test_the_history_is_shown_read_only(admin_client):
    ticket = make(path=["open"])

    page = admin_client.get(reverse("admin:crm_ticket_change", args=[ticket.pk])).content.decode()

    assert "History" in page
    assert "add-row" not in page
    assert 'name="events-0-DELETE"' not in page


def test_a_staff_user_who_may_only_view_tickets_gets_no_bulk_actions(client, django_user_model):
    viewer = django_user_model.objects.create_user("viewer", password="x", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_ticket"))
    client.force_login(viewer)
    make()

    response = client.get(CHANGELIST)

    assert response.status_code == 200
    assert "resolve_tickets" not in response.content.decode()
