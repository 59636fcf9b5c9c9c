"""Token authentication (DRF's rules, read with one raw query) and the dataset lookup every
dataset-scoped request makes."""

import pytest
from rest_framework.test import APIClient

from tests.labeling.api.support import token_client, url

pytestmark = pytest.mark.django_db


def dataset_detail(client, dataset):
    return client.get(url("dataset-detail", dataset_id=dataset.id))


def test_a_valid_token_authenticates_its_user(labeler, dataset):
    response = dataset_detail(token_client(labeler), dataset)
    assert (response.status_code, response.json()["name"]) == (200, dataset.name)


def test_an_unknown_token_is_a_401_with_drfs_message(dataset):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token 0123456789abcdef0123456789abcdef01234567")
    response = dataset_detail(client, dataset)
    assert (response.status_code, response.json()["errors"][0]["message"]) == (401, "Invalid token.")


def test_the_token_of_a_deactivated_user_is_a_401(labeler, dataset):
    client = token_client(labeler)
    labeler.is_active = False
    labeler.save(update_fields=["is_active"])
    response = dataset_detail(client, dataset)
    assert (response.status_code, response.json()["errors"][0]["message"]) == (401, "User inactive or deleted.")


def test_a_superuser_sees_any_dataset_as_an_admin(superuser, dataset):
    response = token_client(superuser).get(url("member-list", dataset_id=dataset.id))
    assert response.status_code == 200


def test_a_member_of_another_dataset_gets_a_404(outsider, dataset):
    assert dataset_detail(token_client(outsider), dataset).status_code == 404


@pytest.mark.parametrize("dataset_id", [2**63, 10**20], ids=["just past 64 bits", "far past"])
def test_a_dataset_id_too_big_to_store_is_a_404_not_a_500(labeler, dataset, dataset_id, client):
    assert token_client(labeler).get(f"/api/v1/datasets/{dataset_id}/").status_code == 404
    client.force_login(labeler)
    assert client.get(f"/api/v1/datasets/{dataset_id}/").status_code == 404  # session: the selector's check
    assert client.get(f"/datasets/{dataset_id}/label/").status_code == 404
