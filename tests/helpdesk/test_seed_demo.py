"""seed_demo and demo_superuser, the commands `make run` uses for local development."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db.models import Count, F
from django.utils import timezone

from crm.models import Ticket, TicketEvent

pytestmark = pytest.mark.django_db


def run(command, **options):
    out = StringIO()
    call_command(command, stdout=out, **options)
    return out.getvalue()


def test_it_seeds_tickets_in_every_state_with_the_due_ones_asked_for():
    output = run("seed_demo", tickets=120, due=15, batch_size=7)

    assert Ticket.objects.count() == 120
    assert set(Ticket.objects.values_list("status", flat=True)) == set(Ticket.Status.values)
    day_ago = timezone.now() - timedelta(hours=24)
    assert Ticket.objects.filter(status="resolved", resolved_at__lt=day_ago).count() == 15
    assert Ticket.objects.filter(status="resolved", resolved_at__gte=day_ago).exists()
    assert output.splitlines()[-2:] == [
        "  120/120 tickets",
        "Created 120 demo tickets, 15 of them due to close.",
    ]


def test_it_seeds_only_rows_that_agree_with_the_constraints():
    run("seed_demo", tickets=120, due=15, batch_size=7)

    now = timezone.now()
    for ticket in Ticket.objects.all():
        assert ticket.status in Ticket.Status.values
        assert (ticket.resolved_at is not None) == (ticket.status in ("resolved", "closed"))
        assert (ticket.closed_at is not None) == (ticket.status == "closed")
        assert ticket.created_at <= (ticket.resolved_at or now) <= (ticket.closed_at or now)
        assert ticket.closed_at is None or ticket.closed_at <= now
        assert (ticket.assignee is None) == (ticket.status == "new")


def test_it_writes_one_event_per_seeded_ticket_with_its_status():
    run("seed_demo", tickets=120, due=15, batch_size=7)

    per_ticket = Ticket.objects.annotate(events_count=Count("events"))
    assert set(per_ticket.values_list("events_count", flat=True)) == {1}
    assert not TicketEvent.objects.exclude(to_status=F("ticket__status")).exists()
    assert set(TicketEvent.objects.values_list("kind", "reason")) == {("status", "demo data")}


def test_it_makes_a_tenth_of_the_tickets_due_by_default():
    output = run("seed_demo", tickets=30)

    day_ago = timezone.now() - timedelta(hours=24)
    assert Ticket.objects.filter(status="resolved", resolved_at__lt=day_ago).count() == 3
    assert "Created 30 demo tickets, 3 of them due to close." in output


def test_it_loads_data_only_once_with_if_empty():
    first = run("seed_demo", tickets=20, due=2, if_empty=True)
    second = run("seed_demo", tickets=20, due=2, if_empty=True)

    assert "Created 20 demo tickets" in first
    assert second == "Demo data not loaded: tickets already exist.\n"
    assert Ticket.objects.count() == 20
    assert TicketEvent.objects.count() == 20


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"tickets": 10, "due": 11}, "--due must be between 0 and --tickets (10), not 11."),
        ({"tickets": 10, "due": -1}, "--due must be between 0 and --tickets (10), not -1."),
        ({"tickets": -1}, "--tickets must be 0 or more"),
        ({"tickets": 10, "batch_size": 0}, "--batch-size 1 or more"),
    ],
    ids=["due-over-tickets", "negative-due", "negative-tickets", "zero-batch-size"],
)
def test_it_rejects_bad_arguments(django_user_model, options, message):
    with pytest.raises(CommandError) as error:
        run("seed_demo", **options)

    assert message in str(error.value)
    assert not Ticket.objects.exists()
    assert not django_user_model.objects.exists()


def test_it_creates_the_demo_superuser_in_debug_when_there_are_no_users(
    settings, django_user_model
):
    settings.DEBUG = True

    output = run("demo_superuser")

    assert output == "Created demo superuser. Log in at /admin/ as admin / admin.\n"
    admin = django_user_model.objects.get()
    assert (admin.username, admin.is_staff, admin.is_superuser) == ("admin", True, True)
    assert admin.check_password("admin")


def test_it_creates_no_demo_superuser_when_users_exist(settings, django_user_model):
    settings.DEBUG = True
    django_user_model.objects.create_user("someone")

    output = run("demo_superuser")

    assert output == "No demo superuser: users already exist.\n"
    assert list(django_user_model.objects.values_list("username", flat=True)) == ["someone"]


def test_it_creates_no_demo_superuser_when_debug_is_off(settings, django_user_model):
    settings.DEBUG = False

    output = run("demo_superuser")

    assert output == "No demo superuser: DEBUG is off.\n"
    assert not django_user_model.objects.exists()
