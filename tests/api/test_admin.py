"""API tokens in the admin: made for a user, shown once, stored hashed,
revoked by deleting them."""

import pytest
from django.urls import reverse
from knox.models import AuthToken
from rest_framework.test import APIClient

from tests.api.conftest import VIEW, user_with

pytestmark = pytest.mark.django_db
TOKENS = reverse("admin:knox_authtoken_changelist")


def test_a_token_made_in_the_admin_is_shown_once_and_stored_hashed(admin_client, django_user_model):
    dashboard = user_with(django_user_model, "dashboard", VIEW)

    response = admin_client.post(
        reverse("admin:knox_authtoken_add"), {"user": dashboard.pk, "expiry": ""}, follow=True
    )

    [message] = [str(m) for m in response.context["messages"] if "The token for" in str(m)]
    token = message.split(" is ", 1)[1].split(" ", 1)[0]
    assert message.startswith("The token for dashboard is ")
    assert "cannot be shown again" in message
    stored = AuthToken.objects.get(user=dashboard)
    assert token not in (stored.digest, stored.token_key) and stored.expiry is None
    listing = admin_client.get(TOKENS).content.decode()
    assert stored.token_key in listing and token not in listing
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert client.get("/api/v1/jobs/").status_code == 200


def test_deleting_a_token_in_the_admin_revokes_it(admin_client, django_user_model):
    stored, token = AuthToken.objects.create(user_with(django_user_model, "dashboard", VIEW))
    delete = reverse("admin:knox_authtoken_delete", args=[stored.pk])

    admin_client.post(delete, {"post": "yes"})

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert client.get("/api/v1/jobs/").status_code == 401
