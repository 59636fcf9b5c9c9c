"""Malformed rows on the write paths (a JSON value where a string is expected) are a 400 with
{"errors": [...]}, never a 500, on both databases, and nothing is stored."""

import pytest

from tests.labeling.api.support import errors_of, row_counts, url

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "rows",
    [
        [{"taxonomy_name": ["clothing_type"], "label": "shirt"}, {"taxonomy_name": ["clothing_type"], "label": "shirt"}],
        # Two names answered twice each, of types that do not sort together.
        [{"taxonomy_name": 1}, {"taxonomy_name": 1}, {"taxonomy_name": "clothing_type", "label": "shirt"}, {"taxonomy_name": "clothing_type", "label": "shirt"}],
    ],
    ids=["list-name-twice", "int-and-str-names-twice"],
)
def test_submit_with_a_non_string_taxonomy_name_given_twice_is_a_400(admin_client, dataset, items, clothing_type, rows):
    before = row_counts()

    response = admin_client.post(url("submit", dataset_id=dataset.id), {"reference_id": "image_1", "annotations": rows}, format="json")

    assert response.status_code == 400
    assert {error["field"] for error in errors_of(response)} >= {"taxonomy_name"}
    assert row_counts() == before


def test_annotations_with_a_non_string_reference_id_is_a_400(admin_client, dataset, items, clothing_type):
    before = row_counts()
    row = {"reference_id": ["image_1"], "taxonomy_name": "clothing_type", "label": "shirt"}

    response = admin_client.post(url("annotation-list", dataset_id=dataset.id), [row], format="json")

    assert (response.status_code, [error["field"] for error in errors_of(response)]) == (400, ["reference_id"])
    assert row_counts() == before
