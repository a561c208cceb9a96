"""The ticket admin: the list, search and filters, the forms, the read-only history,
and bulk actions that go through the services and say what they changed and skipped."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.contrib.auth.models import Permission
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from crm import services
from crm.models import Ticket, TicketEvent
from tests import factories

pytestmark = pytest.mark.django_db


def changelist_url():
    return reverse("admin:crm_ticket_changelist")


def titles(response):
    return sorted(ticket.title for ticket in response.context["cl"].result_list)


def messages_in(response):
    return [(message.level_tag, str(message)) for message in response.context["messages"]]


def act(client, action, tickets):
    response = client.post(
        changelist_url(),
        {"action": action, "_selected_action": [ticket.pk for ticket in tickets]},
        follow=True,
    )
    assert response.status_code == 200
    assert response.redirect_chain == [(changelist_url(), 302)]
    return response


def statuses(*tickets):
    return [Ticket.objects.get(pk=ticket.pk).status for ticket in tickets]


def status_events(ticket):
    return list(
        TicketEvent.objects.filter(ticket=ticket, kind="status")
        .order_by("id")
        .values_list("from_status", "to_status", "actor", "reason")
    )


def form_data(response, **overrides):
    """What a browser would post back for the admin form shown in `response`:
    the main form's current values and every inline's management and row fields."""
    forms = [response.context["adminform"].form]
    for inline in response.context["inline_admin_formsets"]:
        forms += [inline.formset.management_form, *inline.formset.forms]
    data = {}
    for form in forms:
        for name in form.fields:
            value = form[name].value()
            data[form.add_prefix(name)] = "" if value is None else value
    data.update(overrides)
    return data


def test_it_lists_tickets_with_status_priority_assignee_and_age(admin_client, user):
    with time_machine.travel(timezone.now() - timedelta(days=3, hours=2)):
        factories.ticket("pending", title="VPN drops", priority=Ticket.Priority.HIGH, assignee=user)

    response = admin_client.get(changelist_url())

    assert response.status_code == 200
    page = response.content.decode()
    for column in ["status", "priority", "assignee", "age"]:
        assert f'class="sortable column-{column}' in page
    assert '<td class="field-status">Pending</td>' in page
    assert '<td class="field-priority">High</td>' in page
    assert '<td class="field-assignee nowrap">agent</td>' in page
    assert '<td class="field-age">3\xa0days</td>' in page


def test_it_searches_by_title_and_by_requester_name(admin_client):
    factories.ticket(title="VPN drops", requester_name="Olga Ivanova")
    factories.ticket(title="Refund missing", requester_name="John Smith")
    factories.ticket(title="Printer offline", requester_name="Anna Nowak")

    by_title = admin_client.get(changelist_url(), {"q": "vpn"})
    by_requester = admin_client.get(changelist_url(), {"q": "Smith"})
    by_nothing = admin_client.get(changelist_url(), {"q": "nobody-has-this"})

    assert titles(by_title) == ["VPN drops"]
    assert titles(by_requester) == ["Refund missing"]
    assert titles(by_nothing) == []


def test_it_filters_by_status(admin_client):
    factories.ticket("new", title="Fresh")
    factories.ticket("open", title="Working")
    factories.ticket("open", title="Also working")
    factories.ticket("closed", title="Done")

    open_only = admin_client.get(changelist_url(), {"status__exact": "open"})
    closed_only = admin_client.get(changelist_url(), {"status__exact": "closed"})

    assert titles(open_only) == ["Also working", "Working"]
    assert titles(closed_only) == ["Done"]
    assert "?status__exact=pending" in open_only.content.decode()


def test_the_list_never_counts_the_whole_table(admin_client, django_assert_max_num_queries):
    for number in range(3):
        factories.ticket(title=f"Ticket {number}")

    with django_assert_max_num_queries(12) as captured:
        response = admin_client.get(changelist_url(), {"status__exact": "new"})

    assert len(titles(response)) == 3
    counts = [q["sql"] for q in captured.captured_queries if "COUNT(" in q["sql"].upper()]
    assert counts and all("LIMIT" in sql.upper() for sql in counts), counts


def test_it_offers_a_date_hierarchy_by_creation_date(admin_client):
    with time_machine.travel(datetime(2024, 6, 1, 12, tzinfo=UTC)):
        factories.ticket(title="Last year")
    with time_machine.travel(datetime(2025, 2, 1, 12, tzinfo=UTC)):
        factories.ticket(title="This year")

    everything = admin_client.get(changelist_url())
    last_year = admin_client.get(changelist_url(), {"created_at__year": "2024"})

    assert everything.context["cl"].date_hierarchy == "created_at"
    page = everything.content.decode()
    assert "?created_at__year=2024" in page
    assert "?created_at__year=2025" in page
    assert titles(last_year) == ["Last year"]


def test_it_resolves_the_tickets_it_can_and_says_which_it_skipped(admin_client, admin_user):
    opened, pending, closed = map(factories.ticket, ("open", "pending", "closed"))
    closed_events = status_events(closed)

    response = act(admin_client, "resolve_tickets", [opened, pending, closed])

    assert statuses(opened, pending, closed) == ["resolved", "resolved", "closed"]
    assert status_events(opened)[-1] == ("open", "resolved", admin_user.pk, "admin bulk action")
    assert status_events(pending)[-1] == (
        "pending",
        "resolved",
        admin_user.pk,
        "admin bulk action",
    )
    for ticket in (opened, pending):
        assert TicketEvent.objects.filter(ticket=ticket, actor=admin_user).count() == 1
    assert status_events(closed) == closed_events
    assert messages_in(response) == [
        ("success", "2 tickets resolved."),
        ("warning", "1 skipped: 1 closed, cannot be resolved."),
    ]


def test_it_groups_the_skipped_tickets_by_status(admin_client, admin_user):
    tickets = list(map(factories.ticket, ("new", "new", "resolved", "closed", "open")))

    response = act(admin_client, "resolve_tickets", tickets)

    assert statuses(*tickets) == ["new", "new", "resolved", "closed", "resolved"]
    assert TicketEvent.objects.filter(actor=admin_user).count() == 1
    assert messages_in(response) == [
        ("success", "1 ticket resolved."),
        (
            "warning",
            "4 skipped: 1 closed, cannot be resolved; 2 new, cannot be resolved; "
            "1 resolved, cannot be resolved.",
        ),
    ]


def test_it_closes_resolved_tickets_only(admin_client, admin_user):
    first, second, opened = map(factories.ticket, ("resolved", "resolved", "open"))
    resolved_at = Ticket.objects.get(pk=first.pk).resolved_at

    response = act(admin_client, "close_tickets", [first, second, opened])

    assert statuses(first, second, opened) == ["closed", "closed", "open"]
    stored = Ticket.objects.get(pk=first.pk)
    assert stored.resolved_at == resolved_at
    assert stored.closed_at is not None
    for ticket in (first, second):
        assert TicketEvent.objects.filter(ticket=ticket, actor=admin_user).count() == 1
        assert status_events(ticket)[-1] == (
            "resolved",
            "closed",
            admin_user.pk,
            "admin bulk action",
        )
    assert not TicketEvent.objects.filter(ticket=opened, actor=admin_user).exists()
    assert messages_in(response) == [
        ("success", "2 tickets closed."),
        ("warning", "1 skipped: 1 open, cannot be closed."),
    ]


def test_it_reopens_resolved_tickets_but_not_pending_or_closed_ones(admin_client, admin_user):
    resolved, pending, closed = map(factories.ticket, ("resolved", "pending", "closed"))

    response = act(admin_client, "reopen_tickets", [resolved, pending, closed])

    assert statuses(resolved, pending, closed) == ["open", "pending", "closed"]
    assert Ticket.objects.get(pk=resolved.pk).resolved_at is None
    assert status_events(resolved)[-1] == ("resolved", "open", admin_user.pk, "admin bulk action")
    assert TicketEvent.objects.filter(actor=admin_user).count() == 1
    assert messages_in(response) == [
        ("success", "1 ticket reopened."),
        ("warning", "2 skipped: 1 closed, cannot be reopened; 1 pending, cannot be reopened."),
    ]


def test_it_says_so_when_a_bulk_action_changes_nothing(admin_client):
    closed = factories.ticket("closed")

    response = act(admin_client, "close_tickets", [closed])

    assert statuses(closed) == ["closed"]
    assert messages_in(response) == [
        ("success", "0 tickets closed."),
        ("warning", "1 skipped: 1 closed, cannot be closed."),
    ]


def test_it_adds_a_ticket_through_the_services(admin_client, admin_user):
    add_url = reverse("admin:crm_ticket_add")
    data = form_data(
        admin_client.get(add_url),
        title="Invoice shows the wrong amount",
        description="March invoice.",
        requester_name="Maria Rossi",
        requester_email="maria@example.com",
        priority=Ticket.Priority.URGENT,
    )

    response = admin_client.post(add_url, data)

    assert response.status_code == 302
    ticket = Ticket.objects.get()
    assert (ticket.title, ticket.requester_name, ticket.priority, ticket.status) == (
        "Invoice shows the wrong amount",
        "Maria Rossi",
        Ticket.Priority.URGENT,
        "new",
    )
    assert list(ticket.events.values_list("kind", "to_status", "actor", "reason")) == [
        ("status", "new", admin_user.pk, "created")
    ]


def test_it_records_the_assignee_chosen_when_adding(admin_client, admin_user, user):
    add_url = reverse("admin:crm_ticket_add")
    data = form_data(
        admin_client.get(add_url),
        title="Refund not received",
        requester_name="Ali Karimi",
        requester_email="ali@example.com",
        assignee=user.pk,
    )

    response = admin_client.post(add_url, data)

    assert response.status_code == 302
    ticket = Ticket.objects.get()
    assert ticket.assignee == user
    assert list(ticket.events.values_list("kind", "to_assignee", "actor")) == [
        ("status", None, admin_user.pk),
        ("assignment", user.pk, admin_user.pk),
    ]


def test_it_records_an_assignee_changed_on_the_change_form(admin_client, admin_user, user):
    ticket = factories.ticket("open")
    change_url = reverse("admin:crm_ticket_change", args=[ticket.pk])
    data = form_data(admin_client.get(change_url), assignee=user.pk, title="Printer on floor 2")

    response = admin_client.post(change_url, data)

    assert response.status_code == 302
    stored = Ticket.objects.get(pk=ticket.pk)
    assert (stored.title, stored.assignee, stored.status) == ("Printer on floor 2", user, "open")
    assignments = ticket.events.filter(kind="assignment")
    assert list(assignments.values_list("from_assignee", "to_assignee", "actor")) == [
        (None, user.pk, admin_user.pk)
    ]


def test_it_ignores_a_status_posted_to_the_change_form(admin_client):
    ticket = factories.ticket("open")
    events_before = list(ticket.events.values_list("id", flat=True))
    change_url = reverse("admin:crm_ticket_change", args=[ticket.pk])
    page = admin_client.get(change_url)
    data = form_data(page, status="closed", closed_at="2025-01-01 00:00:00")

    response = admin_client.post(change_url, data)

    assert response.status_code == 302
    assert "status" not in page.context["adminform"].form.fields
    assert '<div class="readonly">Open</div>' in page.content.decode()
    stored = Ticket.objects.get(pk=ticket.pk)
    assert (stored.status, stored.closed_at) == ("open", None)
    assert list(ticket.events.values_list("id", flat=True)) == events_before


def changed_meanwhile(ticket):
    return f"Ticket #{ticket.pk} was changed by someone else meanwhile. Reload it and try again."


def test_it_refuses_an_edit_of_a_ticket_changed_meanwhile_and_keeps_the_input(
    admin_client, admin_user, user, django_user_model
):
    ticket = factories.ticket("open")
    change_url = reverse("admin:crm_ticket_change", args=[ticket.pk])
    data = form_data(admin_client.get(change_url), assignee=user.pk, title="Printer on floor 2")
    bob = django_user_model.objects.create_user("bob")
    with time_machine.travel(timezone.now() + timedelta(minutes=5)):
        services.ticket_assign(ticket=Ticket.objects.get(pk=ticket.pk), assignee=bob)
    theirs = Ticket.objects.filter(pk=ticket.pk).values().get()

    response = admin_client.post(change_url, data)

    assert response.status_code == 200
    form = response.context["adminform"].form
    assert form.non_field_errors() == [changed_meanwhile(ticket)]
    assert (form["title"].value(), form["assignee"].value()) == ("Printer on floor 2", str(user.pk))
    assert "was changed by someone else meanwhile" in response.content.decode()
    assert Ticket.objects.filter(pk=ticket.pk).values().get() == theirs
    assert not ticket.events.filter(actor=admin_user).exists()


def test_it_says_so_when_the_ticket_changes_while_the_edit_is_saved(admin_client, admin_user):
    """Changed between the form's check and the write: the service refuses, and
    the admin says why instead of failing with a server error. (The change is
    made inside the request's transaction, so it rolls back with the edit.)"""
    ticket = factories.ticket("open")
    change_url = reverse("admin:crm_ticket_change", args=[ticket.pk])
    data = form_data(admin_client.get(change_url), title="Printer on floor 2")
    before = Ticket.objects.filter(pk=ticket.pk).values().get()
    changed = []

    def change_it_first(execute, sql, params, many, context):
        if not changed and sql.startswith("UPDATE") and Ticket._meta.db_table in sql:
            changed.append(sql)
            Ticket.objects.filter(pk=ticket.pk).update(updated_at=timezone.now())
        return execute(sql, params, many, context)

    with connection.execute_wrapper(change_it_first):
        response = admin_client.post(change_url, data, follow=True)

    assert changed
    assert response.redirect_chain == [(change_url, 302)]
    assert messages_in(response) == [("error", changed_meanwhile(ticket))]
    assert Ticket.objects.filter(pk=ticket.pk).values().get() == before
    assert not ticket.events.filter(actor=admin_user).exists()


def test_it_shows_the_history_read_only(admin_client, admin_user):
    ticket = factories.ticket("resolved")
    act(admin_client, "close_tickets", [ticket])

    response = admin_client.get(reverse("admin:crm_ticket_change", args=[ticket.pk]))

    (history,) = response.context["inline_admin_formsets"]
    assert history.formset.prefix == "events"
    assert [form.instance.to_status for form in history.formset.forms] == [
        "new",
        "open",
        "resolved",
        "closed",
    ]
    assert (history.has_add_permission, history.has_change_permission) == (False, False)
    assert history.formset.can_delete is False
    assert history.formset.management_form["MAX_NUM_FORMS"].value() == 0
    page = response.content.decode()
    assert "admin bulk action" in page
    assert "events-0-DELETE" not in page


def test_it_keeps_the_history_when_a_delete_or_a_new_row_is_posted(admin_client):
    ticket = factories.ticket("open")
    events_before = list(TicketEvent.objects.values_list("id", "reason"))
    change_url = reverse("admin:crm_ticket_change", args=[ticket.pk])
    data = form_data(
        admin_client.get(change_url),
        **{
            "events-0-DELETE": "on",
            "events-TOTAL_FORMS": 3,
            "events-2-ticket": ticket.pk,
            "events-2-reason": "forged",
        },
    )

    response = admin_client.post(change_url, data)

    assert response.status_code == 302
    assert list(TicketEvent.objects.values_list("id", "reason")) == events_before


@pytest.fixture
def staff_client(client, django_user_model):
    """Log the test client in as a staff user with only the given crm permissions."""

    def login_with(*codenames):
        staff = django_user_model.objects.create_user("staff", password="secret", is_staff=True)
        staff.user_permissions.set(
            Permission.objects.filter(content_type__app_label="crm", codename__in=codenames)
        )
        client.force_login(staff)
        return client

    return login_with


def test_it_offers_no_bulk_actions_to_a_user_who_may_only_view(staff_client):
    client = staff_client("view_ticket")
    ticket = factories.ticket("open")

    response = client.get(changelist_url())
    attempt = client.post(
        changelist_url(), {"action": "resolve_tickets", "_selected_action": [ticket.pk]}
    )

    assert response.status_code == 200
    assert response.context["action_form"] is None
    assert "resolve_tickets" not in response.content.decode()
    assert attempt.status_code == 200
    assert statuses(ticket) == ["open"]
    assert ticket.events.count() == 2


def test_it_offers_the_bulk_actions_to_a_user_who_may_change(staff_client):
    client = staff_client("view_ticket", "change_ticket")
    factories.ticket("open")

    response = client.get(changelist_url())

    choices = [name for name, _ in response.context["action_form"].fields["action"].choices]
    assert choices == ["", "resolve_tickets", "close_tickets", "reopen_tickets"]
