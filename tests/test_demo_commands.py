"""seed_demo and demo_superuser, the commands behind `make run`."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from crm.models import Ticket, TicketEvent

pytestmark = pytest.mark.django_db


def run(command, *args, **options):
    out = StringIO()
    call_command(command, *args, stdout=out, **options)
    return out.getvalue()


def test_seed_demo_creates_tickets_in_every_state_with_the_due_ones_asked_for():
    output = run("seed_demo", tickets=400, due=50, batch_size=64)

    assert Ticket.objects.count() == 400
    assert set(Ticket.objects.values_list("status", flat=True)) == set(Ticket.Status.values)
    day_ago = timezone.now() - timedelta(hours=24)
    assert Ticket.objects.filter(status="resolved", resolved_at__lt=day_ago).count() == 50
    assert TicketEvent.objects.count() == 400
    assert "Created 400 demo tickets, 50 of them due to close." in output


def test_seed_demo_if_empty_loads_data_only_once():
    run("seed_demo", tickets=20, if_empty=True)
    output = run("seed_demo", tickets=20, if_empty=True)

    assert Ticket.objects.count() == 20
    assert "tickets already exist" in output


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"tickets": 10, "due": 11}, "--due must be between 0 and --tickets (10), not 11"),
        ({"tickets": -1}, "--tickets must be 0 or more"),
        ({"tickets": 10, "batch_size": 0}, "--batch-size 1 or more"),
    ],
)
def test_seed_demo_rejects_bad_arguments(options, message):
    with pytest.raises(CommandError) as error:
        run("seed_demo", **options)
    assert message in str(error.value)
    assert not Ticket.objects.exists()


def test_demo_superuser_is_created_in_debug_when_there_are_no_users(settings, django_user_model):
    settings.DEBUG = True

    output = run("demo_superuser")

    assert "admin / admin" in output
    assert django_user_model.objects.get().check_password("admin")


def test_no_demo_superuser_when_users_exist_or_debug_is_off(settings, django_user_model):
    settings.DEBUG = False
    assert "DEBUG is off" in run("demo_superuser")
    assert not django_user_model.objects.exists()

    settings.DEBUG = True
    django_user_model.objects.create_user("someone")
    assert "users already exist" in run("demo_superuser")
    assert django_user_model.objects.count() == 1
