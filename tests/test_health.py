"""`/health/` answers whether this process can reach the database and the broker, without a login."""

import os
import time
from unittest import mock

import pytest
from django.db import OperationalError, connection
from django.test.utils import CaptureQueriesContext

from tests.labeling.sync.support import closed_port

pytestmark = pytest.mark.django_db


@pytest.fixture
def broker(settings):
    """Point the health check at a broker URL, as CELERY_BROKER_URL does (eager mode off)."""

    def use(url: str) -> None:
        settings.CELERY_TASK_ALWAYS_EAGER, settings.CELERY_BROKER_URL = False, url

    return use


def test_it_answers_ok_with_one_query_and_no_cookie_when_no_broker_is_configured(client):
    with CaptureQueriesContext(connection) as queries:  # SELECT 1
        response = client.get("/health/")

    assert (response.status_code, response.json()) == (200, {"database": "ok", "broker": "not configured"})
    assert [query["sql"] for query in queries] == ["SELECT 1"]
    assert not response.cookies
    assert "no-store" in response["Cache-Control"]


def test_it_answers_503_naming_the_database_when_the_database_is_down(client):
    with mock.patch.object(connection, "ensure_connection", side_effect=OperationalError("connection refused")):
        response = client.get("/health/")

    assert (response.status_code, response.json()) == (503, {"database": "failed", "broker": "not configured"})


def test_it_answers_503_naming_the_broker_when_the_broker_is_unreachable(client, broker):
    broker(f"redis://127.0.0.1:{closed_port()}/0")

    started = time.monotonic()
    response = client.get("/health/")

    assert (response.status_code, response.json()) == (503, {"database": "ok", "broker": "failed"})
    assert time.monotonic() - started < 5


@pytest.mark.skipif(not os.environ.get("TEST_REDIS_URL"), reason="TEST_REDIS_URL is not set: no Redis to ping")
def test_it_answers_ok_when_the_broker_answers(client, broker):
    broker(os.environ["TEST_REDIS_URL"])

    response = client.get("/health/")

    assert (response.status_code, response.json()) == (200, {"database": "ok", "broker": "ok"})


def test_it_is_reachable_over_plain_http_when_everything_else_redirects_to_https(client, settings):
    settings.SECURE_SSL_REDIRECT = True

    assert client.get("/health/").status_code == 200
    assert client.get("/accounts/login/").status_code == 301


def test_it_refuses_writes(client):
    assert client.head("/health/").status_code == 200
    assert client.post("/health/").status_code == 405


def test_it_answers_a_probe_by_address_that_is_not_an_allowed_host(client, settings):
    """A load balancer probes by IP (`Host: 10.0.0.5`); Django would refuse that host anywhere else."""
    assert "10.0.0.5" not in settings.ALLOWED_HOSTS
    settings.SECURE_SSL_REDIRECT = True

    with CaptureQueriesContext(connection) as queries:  # SELECT 1
        response = client.get("/health/", HTTP_HOST="10.0.0.5")

    assert (response.status_code, response.json()) == (200, {"database": "ok", "broker": "not configured"})
    assert [query["sql"] for query in queries] == ["SELECT 1"]
    assert not response.cookies
    assert client.head("/health/", HTTP_HOST="10.0.0.5").status_code == 200
    for path in ["/accounts/login/", "/health", "/health/x", "/api/v1/datasets/"]:
        assert client.get(path, HTTP_HOST="10.0.0.5").status_code == 400, path
    assert client.post("/health/", HTTP_HOST="10.0.0.5").status_code == 400
