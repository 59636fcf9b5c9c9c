"""Schemathesis against the project's own OpenAPI schema: no input, valid or not, gets a 500.

Every operation of /api/schema/ is called through the WSGI application (no server) with the token
of a dataset admin, on a dataset with taxonomies, items and a scene dataset, so that most requests
get past the permission check and reach the services. The dataset id in the path is always the
real one (random ids would only test the 404); taxonomy names, labels and usernames are the real
ones or generated ones. After each request: no partial batch was stored, and every item and
scene has its queue task.

Strings are then tainted (`tainted`): some keys and values of the body, the query and the path get
a NUL, a C0/C1 control or (in JSON bodies, the only place one can travel) a lone surrogate, the text
no database stores the same way; the answer must still not be a 500.
"""

import json
import traceback

import pytest
import schemathesis
from django.core import signals
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient
from schemathesis.checks import not_a_server_error
from schemathesis.core import NotSet

from config.wsgi import application
from labeling.models import Dataset, DatasetMember, Item, Scene
from labeling.services.items import items_import
from taxonomies.services import taxonomy_create
from tests.factories import DatasetMemberFactory, UserFactory

pytestmark = pytest.mark.django_db

schema = schemathesis.openapi.from_wsgi("/api/schema/", application)

# Real names for the path parameters that name a row, next to whatever the fuzzer makes up.
KNOWN = {
    "taxonomy_name": ["clothing_type", "attributes"],
    "label": ["shirt", "pants", "striped", "logo"],
    "username": ["alice", "bob", "charlie"],
}


@schema.hook
def flatmap_path_parameters(context, path_parameters):
    if not path_parameters:
        return st.just(path_parameters)
    return st.fixed_dictionaries(
        {
            name: st.sampled_from([*KNOWN[name], value]) if name in KNOWN else st.just(value)
            for name, value in path_parameters.items()
        }
    )


@pytest.fixture
def server_errors():
    """The traceback of each exception a request raised, to print with a 500. Also keeps the test's
    database connection open: like Django's test client, the WSGI handler must not run
    close_old_connections, which would close the connection holding the test's transaction."""
    found: list[str] = []

    def record(sender, request=None, **kwargs):
        found.append(f"{request.method} {request.get_full_path()}\n{traceback.format_exc()}")

    signals.got_request_exception.connect(record)
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield found
    finally:
        signals.request_finished.connect(close_old_connections)
        signals.request_started.connect(close_old_connections)
        signals.got_request_exception.disconnect(record)


@pytest.fixture
def token(dataset, admin, labeler, outsider) -> str:
    """alice's token: admin of `dataset` (with two taxonomies and three items) and of a scene dataset."""
    taxonomy_create(dataset=dataset, taxonomy_name="clothing_type", labels=["shirt", "pants", "dress"])
    taxonomy_create(dataset=dataset, taxonomy_name="attributes", labels=["striped", "logo"], multi_label=True)
    items_import(dataset=dataset, rows=[{"reference_id": f"image_{n}", "image_url": f"https://images.example.com/{n}.jpg"} for n in range(3)])
    DatasetMemberFactory(dataset__name="Street scenes", dataset__kind="scenes", user=admin, role=DatasetMember.Role.ADMIN)
    DatasetMemberFactory(dataset__name="Vehicles", user=UserFactory(username="dave"), role=DatasetMember.Role.ADMIN)
    return Token.objects.create(user=admin).key


def scene_dataset_of(token: str) -> Dataset:
    return Dataset.objects.get(kind=Dataset.Kind.SCENES, memberships__user__auth_token__key=token)


def stored_counts() -> tuple[int, int]:
    return Item.objects.count(), Scene.objects.count()


# NUL, C0 and C1 controls; a lone surrogate only where JSON carries it (a URL or a multipart body
# is UTF-8 bytes, which cannot hold one).
TAINTS = ["\x00", "\x01", "\x1f", "\x7f", "\x85", "\x9f"]
JSON_TAINTS = [*TAINTS, "\ud800", "\udfff"]


def tainted(value, data, taints: list[str]):
    """`value` with some of its strings (keys and values, at any depth) given a drawn character."""
    if isinstance(value, str):
        return value + data.draw(st.sampled_from(["", "", *taints]))
    if isinstance(value, dict):
        return {tainted(key, data, taints): tainted(child, data, taints) for key, child in value.items()}
    if isinstance(value, list):
        return [tainted(child, data, taints) for child in value]
    return value


def json_text(body) -> str | None:
    try:
        return json.dumps(body)
    except TypeError:
        return None


@schema.given(data=st.data())
@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_no_request_gets_a_server_error(data, case, dataset, token, server_errors):
    generated_id = (case.path_parameters or {}).get("dataset_id")
    if isinstance(generated_id, int):
        # The fuzzer's integer picks one of alice's two datasets: even, images; odd, scenes.
        case.path_parameters["dataset_id"] = (dataset.id if generated_id % 2 == 0 else scene_dataset_of(token).id)
    sent = {}
    if not isinstance(case.body, NotSet):
        json_body = json_text(tainted(case.body, data, JSON_TAINTS)) if (case.media_type or "").startswith("application/json") else None
        if json_body is not None:
            # Sent as text: schemathesis re-validates a changed body, and its validator cannot read a surrogate.
            sent["data"] = json_body
        else:  # a form, or JSON with bytes in it: only what UTF-8 carries
            case.body = tainted(case.body, data, TAINTS)
    case.query = tainted(case.query, data, TAINTS)
    if case.path_parameters:
        case.path_parameters = {name: tainted(value, data, TAINTS) for name, value in case.path_parameters.items()}
    items_before, scenes_before = stored_counts()

    response = case.call(headers={"Authorization": f"Token {token}"}, **sent)

    if response.status_code >= 500 and server_errors:
        print(server_errors[-1])
    case.validate_response(response, checks=[not_a_server_error])
    items_after, scenes_after = stored_counts()
    if case.method == "POST" and case.path.endswith(("/items/", "/scenes/")):
        # All or nothing: a 201 stored exactly the rows it reports, any other answer none (nor
        # does an Idempotency-Key replay of an earlier 201).
        replayed = response.headers.get("Idempotent-Replayed") == "true"
        created = response.json()["created"] if response.status_code == 201 and not replayed else 0
        added = items_after - items_before if case.path.endswith("/items/") else scenes_after - scenes_before
        assert added == created, f"{added} rows stored for a {response.status_code} answer reporting {created}"
    assert not Item.objects.filter(scene__isnull=True, task__isnull=True).exists(), "an item without its task"
    assert not Scene.objects.filter(task__isnull=True).exists(), "a scene without its task"


def test_a_json_body_nested_deeper_than_python_parses_is_refused_with_a_400(dataset, token):
    client = APIClient(raise_request_exception=False)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")

    response = client.post(f"/api/v1/datasets/{dataset.id}/items/", data=b"[" * 100_000, content_type="application/json")

    assert response.status_code == 400
