"""POSTs that create rows honour an Idempotency-Key: a retry gets the first answer, not new rows."""

import pytest
from rest_framework.test import APIClient

from labeling.models import IdempotentRequest, Item

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(admin):
    client = APIClient()
    client.force_authenticate(admin)
    return client


def post_items(api, dataset, rows, key):
    return api.post(f"/api/v1/datasets/{dataset.id}/items/", rows, format="json", HTTP_IDEMPOTENCY_KEY=key)


def test_a_retry_with_the_same_key_replays_the_answer_without_creating_rows_again(api, dataset):
    rows = [{"reference_id": "image_1", "image_url": "https://a.test/1.jpg"}]
    first = post_items(api, dataset, rows, "import-1")
    retry = post_items(api, dataset, rows, "import-1")
    assert (first.status_code, retry.status_code) == (201, 201)
    assert retry.json() == first.json() and retry["Idempotent-Replayed"] == "true"
    assert Item.objects.count() == 1


def test_a_failed_request_frees_its_key_for_the_corrected_retry(api, dataset):
    bad = post_items(api, dataset, [{"reference_id": "image_1", "image_url": "ftp://a.test/1.jpg"}], "import-1")
    good = post_items(api, dataset, [{"reference_id": "image_1", "image_url": "https://a.test/1.jpg"}], "import-1")
    assert (bad.status_code, good.status_code) == (400, 201)
    assert Item.objects.count() == 1


def test_a_key_cannot_be_reused_for_another_request(api, dataset):
    post_items(api, dataset, [{"reference_id": "image_1", "image_url": "https://a.test/1.jpg"}], "key")
    response = api.post("/api/v1/datasets/", {"name": "Other", "kind": "images"}, format="json", HTTP_IDEMPOTENCY_KEY="key")
    assert response.status_code == 400
    assert response.json()["errors"] == [{"field": "Idempotency-Key", "message": "This key was already used for another request."}]


def test_a_key_still_running_answers_409(api, dataset, admin):
    IdempotentRequest.objects.create(user=admin, key="busy", path=f"/api/v1/datasets/{dataset.id}/items/")
    response = post_items(api, dataset, [{"reference_id": "image_1", "image_url": "https://a.test/1.jpg"}], "busy")
    assert response.status_code == 409
    assert not Item.objects.exists()


def test_keys_are_per_user(api, dataset, labeler):
    rows = [{"reference_id": "image_1", "image_url": "https://a.test/1.jpg"}]
    post_items(api, dataset, rows, "same")
    other = APIClient()
    other.force_authenticate(labeler)
    response = other.post(f"/api/v1/datasets/{dataset.id}/annotations/", [], format="json", HTTP_IDEMPOTENCY_KEY="same")
    assert response.status_code == 400  # the labeler's own (empty, refused) request ran: no replay of alice's answer
    assert "Idempotent-Replayed" not in response
