"""Every error of the API has the documented `{"errors": [{"index"?, "field", "message"}]}` shape,
DRF's own refusals and the parsers' included, and no message shows a Python repr of what was sent."""

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.labeling.api.support import errors_of, row_counts, url

pytestmark = pytest.mark.django_db


def test_a_broken_json_body_says_where(admin_client, dataset):
    response = admin_client.post(url("item-list", dataset_id=dataset.id), data=b'[{"reference_id": "a",', content_type="application/json")

    assert response.status_code == 400
    assert errors_of(response) == [{"field": "", "message": "JSON parse error - Expecting property name enclosed in double quotes: line 1 column 23 (char 22)"}]


class TestABodyOverTheLimitIsA413:
    @pytest.fixture(autouse=True)
    def limit(self, settings):
        settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000

    def test_json(self, admin_client, dataset):
        rows = [{"reference_id": f"r{n}", "image_url": "https://images.example.com/a.jpg"} for n in range(40)]
        before = row_counts()

        response = admin_client.post(url("item-list", dataset_id=dataset.id), data=json.dumps(rows), content_type="application/json")

        assert response.status_code == 413
        assert errors_of(response) == [
            {"field": "", "message": "The body is larger than 1000 bytes; send the rows as a file (multipart `file`) or in smaller batches."}
        ]
        assert row_counts() == before

    def test_a_form(self, admin_client, dataset):
        response = admin_client.post(url("taxonomy-list", dataset_id=dataset.id), data="labels=" + "a" * 2000, content_type="application/x-www-form-urlencoded")

        assert (response.status_code, errors_of(response)[0]["field"]) == (413, "")

    def test_the_fields_of_a_multipart_body(self, admin_client, dataset):
        response = admin_client.post(url("taxonomy-list", dataset_id=dataset.id), {"taxonomy_name": "a" * 2000, "labels": ["x"]}, format="multipart")

        assert (response.status_code, errors_of(response)[0]["field"]) == (413, "")


def test_a_file_where_text_belongs_is_refused_without_its_repr(admin_client, dataset, clothing_type):
    upload = SimpleUploadedFile("image_1.png", b"not an image")

    response = admin_client.post(
        url("annotation-list", dataset_id=dataset.id),
        {"reference_id": upload, "taxonomy_name": "clothing_type", "label": "shirt"},
        format="multipart",
    )

    assert response.status_code == 400
    assert errors_of(response) == [{"field": "reference_id", "message": "Expected text here, not a file."}]
    assert "<" not in response.content.decode()


def test_text_where_a_file_belongs_is_refused(admin_client, dataset):
    response = admin_client.post(url("item-list", dataset_id=dataset.id), {"file": "rows.csv"}, format="multipart")

    assert errors_of(response) == [{"field": "file", "message": "Expected a file here, not text."}]


@pytest.mark.parametrize(
    ("method", "name", "content_type", "status"),
    [("put", "item-list", "application/json", 405), ("post", "item-list", "text/plain", 415), ("get", "dataset-detail", None, 404)],
)
def test_drfs_own_refusals_have_the_shape_too(admin_client, other_dataset, dataset, method, name, content_type, status):
    kwargs = {"data": "x", "content_type": content_type} if content_type else {}

    response = getattr(admin_client, method)(url(name, dataset_id=other_dataset.id if status == 404 else dataset.id), **kwargs)

    assert response.status_code == status
    assert list(response.json()) == ["errors"]
    assert [set(error) for error in errors_of(response)] == [{"field", "message"}]


@pytest.mark.parametrize("reference_id", [{"a": 1}, ["image_1"], 5, None, True])
def test_a_reference_id_that_is_not_a_string_is_named_without_a_python_value(admin_client, dataset, clothing_type, reference_id):
    row = {"reference_id": reference_id, "taxonomy_name": "clothing_type", "label": "shirt"}

    response = admin_client.post(url("annotation-list", dataset_id=dataset.id), data=json.dumps([row]), content_type="application/json")

    assert response.status_code == 400
    assert errors_of(response) == [{"index": 0, "field": "reference_id", "message": "Give the reference_id (a string) of an item or scene."}]


def test_a_url_under_the_api_that_names_no_endpoint_is_a_404_in_the_shape(admin_client, dataset):
    response = admin_client.get(f"/api/v1/datasets/{dataset.id}/no-such-endpoint/")

    assert (response.status_code, errors_of(response)) == (404, [{"field": "", "message": "No endpoint has this URL; see /api/docs/."}])


def test_a_page_that_does_not_exist_is_still_the_sites_404_page(client):
    response = client.get("/no-such-page/")

    assert (response.status_code, response["Content-Type"].startswith("text/html")) == (404, True)
