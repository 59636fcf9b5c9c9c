"""Who may do what: role (admin, labeler, outsider, anonymous) x every endpoint and method x their
own dataset or another one; token and session authentication; and no way to reach another
dataset's rows through a filter or a reference_id."""

from dataclasses import dataclass, field

import pytest
from django.db.models import Model
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from labeling.models import CategoryAnnotation, Dataset, DatasetMember, Item, Scene, Task, TaskSkip
from taxonomies.models import Label, Taxonomy
from taxonomies.services import taxonomy_create
from tests.factories import DatasetFactory, DatasetMemberFactory, SceneFactory, UserFactory
from tests.labeling.api.support import answer, errors_of, item_with_task, row_counts, token_client, url

pytestmark = pytest.mark.django_db

ADMIN, MEMBER = "admin", "member"
# Admins, and labelers on what the queue handed them (test_write_ownership.py has that matrix):
# here nobody holds the item, so a labeler gets 409.
HELD = "held"
NOT_SIGNED_IN = "Authentication credentials were not provided."


@dataclass(frozen=True)
class Call:
    """One endpoint and method, with a request that succeeds for whoever may make it."""

    name: str
    method: str
    allowed: str  # ADMIN: admins only; MEMBER: any member; HELD: admins, and a labeler holding the item
    success: int
    kwargs: dict = field(default_factory=dict)
    body: object = None
    kind: str = Dataset.Kind.IMAGES

    def __str__(self) -> str:
        return f"{self.method.upper()} {self.name}"

    def send(self, client: APIClient, dataset: Dataset):
        send = getattr(client, self.method)
        target = url(self.name, dataset_id=dataset.id, **self.kwargs)
        return send(target, self.body, format="json") if self.body is not None else send(target)


ITEM_ROW = {"reference_id": "image_9", "image_url": "https://images.example.com/9.jpg"}
ANSWER = {"taxonomy_name": "clothing_type", "label": "shirt"}
CALLS = [
    Call("dataset-detail", "get", MEMBER, 200),
    Call("dataset-detail", "patch", ADMIN, 200, body={"name": "Renamed"}),
    Call("member-list", "get", MEMBER, 200),
    Call("member-list", "post", ADMIN, 201, body={"username": "charlie", "role": "labeler"}),
    Call("member-detail", "patch", ADMIN, 200, {"username": "erin"}, {"role": "admin"}),
    Call("member-detail", "delete", ADMIN, 204, {"username": "erin"}),
    Call("taxonomy-list", "get", MEMBER, 200),
    Call("taxonomy-list", "post", ADMIN, 201, body={"taxonomy_name": "color", "labels": ["red"]}),
    Call("taxonomy-detail", "get", MEMBER, 200, {"taxonomy_name": "clothing_type"}),
    Call("taxonomy-detail", "patch", ADMIN, 200, {"taxonomy_name": "clothing_type"}, {"required": False}),
    Call("taxonomy-detail", "delete", ADMIN, 204, {"taxonomy_name": "clothing_type"}),
    Call("label-list", "post", ADMIN, 200, {"taxonomy_name": "clothing_type"}, {"labels": ["hat"]}),
    Call("label-detail", "patch", ADMIN, 200, {"taxonomy_name": "clothing_type", "label": "shirt"}, {"name": "blouse"}),
    Call("label-detail", "delete", ADMIN, 200, {"taxonomy_name": "clothing_type", "label": "dress"}),
    Call("item-list", "get", MEMBER, 200),
    Call("item-list", "post", ADMIN, 201, body=[ITEM_ROW]),
    Call("scene-list", "get", MEMBER, 200, kind=Dataset.Kind.SCENES),
    Call("scene-list", "post", ADMIN, 201, body=[{"reference_id": "scene_9", "video_url": "https://v.example.com/9.mp4"}], kind=Dataset.Kind.SCENES),
    Call("annotation-list", "get", MEMBER, 200),
    Call("annotation-list", "post", HELD, 200, body={"reference_id": "image_1", **ANSWER}),
    Call("export", "get", MEMBER, 200),
    Call("next", "post", MEMBER, 200),
    Call("submit", "post", HELD, 200, body={"reference_id": "image_1", "annotations": [ANSWER]}),
    Call("skip", "post", MEMBER, 204, body={"reference_id": "image_1"}),
]
ROLES = ["admin", "labeler", "outsider", "anonymous"]


def populated_dataset(*, name: str, kind: str, admin, labeler=None) -> Dataset:
    """A dataset with the same rows as every other one the matrix builds: a clothing_type taxonomy,
    image_1 and image_2 (or scene_1 and scene_2) with their tasks, and erin as a labeler; so a 404
    can only mean "not yours", never "no such row"."""
    dataset = DatasetFactory(name=name, kind=kind)
    DatasetMemberFactory(dataset=dataset, user=admin, role=DatasetMember.Role.ADMIN)
    if labeler is not None:
        DatasetMemberFactory(dataset=dataset, user=labeler, role=DatasetMember.Role.LABELER)
    DatasetMemberFactory(dataset=dataset, user=UserFactory(username="erin"), role=DatasetMember.Role.LABELER)
    applies_to = Taxonomy.AppliesTo.ITEMS if kind == Dataset.Kind.IMAGES else Taxonomy.AppliesTo.SCENES
    taxonomy_create(dataset=dataset, taxonomy_name="clothing_type", labels=["shirt", "pants", "dress"], applies_to=applies_to)
    for n in (1, 2):
        if kind == Dataset.Kind.IMAGES:
            item_with_task(dataset, f"image_{n}")
        else:
            Task.objects.create(dataset=dataset, scene=SceneFactory(dataset=dataset, reference_id=f"scene_{n}"))
    return dataset


def state() -> dict[str, list]:
    """Every row the API can change, with the fields it can change: equal before and after a
    refused request, it proves the request changed nothing."""
    def rows(model: type[Model], *fields: str) -> list:
        return sorted(model.objects.values_list("pk", *fields))

    return {
        "datasets": rows(Dataset, "name", "nucleus_dataset_id"),
        "members": rows(DatasetMember, "dataset_id", "user_id", "role"),
        "taxonomies": rows(Taxonomy, "taxonomy_name", "required", "applies_to", "position"),
        "labels": rows(Label, "taxonomy_id", "name", "hotkey", "position"),
        "items": rows(Item, "reference_id"),
        "scenes": rows(Scene, "reference_id"),
        "tasks": rows(Task, "state", "holder_id", "lease_expires_at"),
        "skips": rows(TaskSkip, "task_id", "user_id"),
        "annotations": rows(CategoryAnnotation, "label_id", "status", "version"),
    }


def expected_status(call: Call, role: str, dataset: str) -> set[int]:
    if role == "anonymous":
        # DRF answers 403 rather than 401 when its first authentication class (the session) sends
        # no WWW-Authenticate header; either way the request is refused before the dataset is read.
        return {401, 403}
    if role == "outsider" or dataset == "other":
        return {404}
    if role == "labeler" and call.allowed == ADMIN:
        return {403}
    if role == "labeler" and call.allowed == HELD:
        return {409}
    return {call.success}


@pytest.mark.parametrize("dataset_name", ["own", "other"])
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("call", CALLS, ids=str)
def test_the_permission_matrix(call, role, dataset_name, admin, labeler, outsider):
    own = populated_dataset(name="Own", kind=call.kind, admin=admin, labeler=labeler)
    other = populated_dataset(name="Other", kind=call.kind, admin=UserFactory(username="dave"))
    client = {"admin": token_client(admin), "labeler": token_client(labeler), "outsider": token_client(outsider), "anonymous": APIClient()}[role]
    expected = expected_status(call, role, dataset_name)
    before = state()

    response = call.send(client, own if dataset_name == "own" else other)

    assert response.status_code in expected
    if expected != {call.success}:
        assert state() == before
    if role == "anonymous":
        assert response.json() == {"errors": [{"field": "", "message": NOT_SIGNED_IN}]}


class TestDatasetList:
    """datasets/ is not scoped to a dataset: anyone signed in lists their own; creating one takes
    the labeling.add_dataset permission (tests/labeling/api/test_dataset_create.py)."""

    @pytest.mark.parametrize("role", ["admin", "labeler", "outsider"])
    def test_every_signed_in_user_may_list_their_datasets(self, role, admin, labeler, outsider):
        user = {"admin": admin, "labeler": labeler, "outsider": outsider}[role]
        assert token_client(user).get(url("dataset-list")).status_code == 200

    @pytest.mark.parametrize("role", ["admin", "labeler", "outsider"])
    def test_a_signed_in_user_without_the_permission_may_not_create_a_dataset(self, role, admin, labeler, outsider):
        user = {"admin": admin, "labeler": labeler, "outsider": outsider}[role]
        before = row_counts()
        assert token_client(user).post(url("dataset-list"), {"name": f"{role}'s"}, format="json").status_code == 403
        assert row_counts() == before

    def test_an_anonymous_client_may_not_list_datasets(self, anonymous_client, dataset):
        response = anonymous_client.get(url("dataset-list"))
        assert (response.status_code in {401, 403}, response.json()) == (True, {"errors": [{"field": "", "message": NOT_SIGNED_IN}]})

    def test_an_anonymous_client_may_not_create_a_dataset(self, anonymous_client, dataset):
        before = row_counts()
        response = anonymous_client.post(url("dataset-list"), {"name": "Mine"}, format="json")
        assert (response.status_code in {401, 403}, response.json()) == (True, {"errors": [{"field": "", "message": NOT_SIGNED_IN}]})
        assert row_counts() == before


class TestAuthentication:
    def test_a_token_in_the_authorization_header_signs_the_user_in(self, dataset, admin):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=admin).key}")
        response = client.get(url("dataset-detail", dataset_id=dataset.id))
        assert (response.status_code, response.json()["role"]) == (200, "admin")

    def test_an_unknown_token_is_refused(self, dataset, admin):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION="Token 0123456789abcdef0123456789abcdef01234567")
        response = client.get(url("dataset-detail", dataset_id=dataset.id))
        assert (response.status_code in {401, 403}, response.json()) == (True, {"errors": [{"field": "", "message": "Invalid token."}]})

    def test_a_signed_in_browser_session_may_read(self, dataset, admin):
        client = APIClient()
        client.force_login(admin)
        assert client.get(url("dataset-detail", dataset_id=dataset.id)).status_code == 200

    def test_a_session_post_without_a_csrf_token_is_refused(self, dataset, admin):
        client = APIClient(enforce_csrf_checks=True)
        client.force_login(admin)
        before = row_counts()
        response = client.post(url("taxonomy-list", dataset_id=dataset.id), {"taxonomy_name": "color", "labels": ["red"]}, format="json")
        assert response.status_code == 403
        assert response.json()["errors"][0]["message"].startswith("CSRF Failed")
        assert row_counts() == before


class TestNoCrossDatasetLeak:
    """A name or reference_id that exists only in another dataset finds nothing here."""

    @pytest.fixture
    def vehicles(self, other_dataset):
        """dave's dataset, with a truck_1 item he labelled 'truck' in his vehicle_type taxonomy."""
        dave = DatasetMember.objects.get(dataset=other_dataset).user
        vehicle_type = taxonomy_create(dataset=other_dataset, taxonomy_name="vehicle_type", labels=["truck", "car"])
        answer(target=item_with_task(other_dataset, "truck_1"), taxonomy=vehicle_type, names=["truck"], annotator=dave)
        return other_dataset

    @pytest.fixture(autouse=True)
    def own_rows(self, dataset, items, clothing_type, labeler):
        answer(target=items[0], taxonomy=clothing_type, names=["shirt"], annotator=labeler)

    @pytest.mark.parametrize("query", ["reference_id=truck_1", "annotator=dave", "taxonomy=vehicle_type", "label=truck"])
    @pytest.mark.parametrize("listing", ["item-list", "annotation-list"])
    def test_a_filter_naming_another_datasets_rows_finds_nothing(self, admin_client, dataset, vehicles, listing, query):
        response = admin_client.get(url(listing, dataset_id=dataset.id) + f"?{query}")
        assert (response.status_code, response.json()) == (200, {"results": [], "next": None})

    def test_submit_cannot_reach_another_datasets_item(self, labeler_client, dataset, vehicles):
        before = state()
        response = labeler_client.post(
            url("submit", dataset_id=dataset.id), {"reference_id": "truck_1", "annotations": [ANSWER]}, format="json"
        )
        assert (response.status_code, [error["field"] for error in errors_of(response)]) == (400, ["reference_id"])
        assert state() == before

    def test_skip_cannot_reach_another_datasets_item(self, labeler_client, dataset, vehicles):
        before = state()
        response = labeler_client.post(url("skip", dataset_id=dataset.id), {"reference_id": "truck_1"}, format="json")
        assert (response.status_code, [error["field"] for error in errors_of(response)]) == (400, ["reference_id"])
        assert state() == before

    def test_annotations_cannot_reach_another_datasets_item(self, labeler_client, dataset, vehicles):
        before = state()
        response = labeler_client.post(url("annotation-list", dataset_id=dataset.id), {"reference_id": "truck_1", **ANSWER}, format="json")
        assert errors_of(response) == [{"index": 0, "field": "reference_id", "message": "No item or scene has reference_id 'truck_1'."}]
        assert state() == before

    def test_annotations_cannot_use_another_datasets_taxonomy(self, labeler_client, dataset, vehicles):
        before = state()
        response = labeler_client.post(
            url("annotation-list", dataset_id=dataset.id), {"reference_id": "image_2", "taxonomy_name": "vehicle_type", "label": "truck"}, format="json"
        )
        assert [(error["index"], error["field"]) for error in errors_of(response)] == [(0, "taxonomy_name")]
        assert state() == before

    @pytest.mark.parametrize(
        "call",
        [
            Call("taxonomy-detail", "patch", ADMIN, 200, {"taxonomy_name": "vehicle_type"}, {"required": False}),
            Call("label-list", "post", ADMIN, 200, {"taxonomy_name": "vehicle_type"}, {"labels": ["bus"]}),
            Call("label-detail", "delete", ADMIN, 200, {"taxonomy_name": "vehicle_type", "label": "car"}),
            Call("member-detail", "patch", ADMIN, 200, {"username": "dave"}, {"role": "labeler"}),
        ],
        ids=str,
    )
    def test_a_url_naming_another_datasets_row_is_not_found(self, admin_client, dataset, vehicles, call):
        before = state()
        assert call.send(admin_client, dataset).status_code == 404
        assert state() == before
