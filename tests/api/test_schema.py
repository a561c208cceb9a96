"""The OpenAPI schema at its stable URL: valid, under /api/v1/, describing
exactly the fields the answers have and taking no function or code."""

import pytest
from openapi_spec_validator import validate
from rest_framework.test import APIClient

from crm.api import schema
from crm.api import serializers as api_serializers
from crm.scheduler import serializers, status
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def spec():
    response = APIClient().get("/api/v1/schema/", {"format": "json"})
    assert response.status_code == 200
    return response.json()


def test_the_schema_is_valid_openapi_and_open_to_anyone(spec):
    validate(spec)

    assert spec["info"]["version"] == "1"


def test_every_endpoint_is_under_api_v1(spec):
    assert sorted(spec["paths"]) == [
        "/api/v1/executions/",
        "/api/v1/executions/{execution_id}/",
        "/api/v1/jobs/",
        "/api/v1/jobs/{job_id}/",
        "/api/v1/jobs/{job_id}/pause/",
        "/api/v1/jobs/{job_id}/resume/",
        "/api/v1/jobs/{job_id}/run/",
    ]


def test_tokens_and_sessions_are_the_documented_ways_in(spec):
    schemes = spec["components"]["securitySchemes"]

    assert schemes["knoxApiToken"] == {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": 'Token-based authentication with required prefix "Token"',
    }
    assert schemes["cookieAuth"] == {"type": "apiKey", "in": "cookie", "name": "sessionid"}


def test_the_api_takes_nothing_but_filters_and_a_pauses_end_and_note(spec):
    taken = set()
    for operations in spec["paths"].values():
        for operation in operations.values():
            taken |= {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
            body = operation.get("requestBody", {}).get("content", {})
            for media in body.values():
                name = media["schema"]["$ref"].rsplit("/", 1)[-1]
                taken |= set(spec["components"]["schemas"][name]["properties"])

    assert taken == {
        "job", "status", "scheduled_since", "scheduled_before", "page_size", "cursor",
        "until", "note",
    }  # fmt: skip


def test_the_documented_fields_are_those_the_answers_have():
    run = factories.job_run("nightly", detail={})
    [job] = status.job_states(job_ids=["nightly"])

    assert set(schema.JobState().fields) == set(serializers.job_state(job))
    assert set(schema.Execution().fields) == set(serializers.execution(run))
    assert set(schema.ListedExecution().fields) == set(api_serializers.execution(run))
    assert set(schema.ExecutionInFull().fields) == set(api_serializers.execution_in_full(run))
    pause = status.PauseInfo(by="api: operator", since=run.run_time, until=None, note="")
    assert set(schema.Pause().fields) == set(serializers.pause(pause))
