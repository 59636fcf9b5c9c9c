"""Linking a dataset to a Nucleus dataset checks it there (`dataset.info()`), through the API and the admin."""

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from labeling.models import Dataset
from tests.factories import with_permission

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(admin) -> APIClient:
    client = APIClient()
    client.force_authenticate(admin)
    return client


def link(api, dataset, nucleus_dataset_id):
    return api.patch(f"/api/v1/datasets/{dataset.id}/", {"nucleus_dataset_id": nucleus_dataset_id}, format="json")


class TestTheApi:
    def test_a_dataset_nucleus_has_is_linked_after_asking_its_info(self, api, dataset, fake_nucleus, nucleus_settings):
        remote_id = fake_nucleus.create_dataset("clothing")

        response = link(api, dataset, remote_id)

        assert response.status_code == 200
        assert (response.json()["nucleus_dataset_id"], response.json()["warnings"]) == (remote_id, [])
        assert [request.path for request in fake_nucleus.requests_to("info")] == [f"dataset/{remote_id}/info"]

    def test_an_id_nucleus_does_not_know_is_a_400_naming_the_field(self, api, dataset, fake_nucleus, nucleus_settings):
        response = link(api, dataset, "ds_missing")

        assert response.status_code == 400
        (error,) = response.json()["errors"]
        assert error["field"] == "nucleus_dataset_id"
        assert "Nucleus has no dataset 'ds_missing'" in error["message"]
        dataset.refresh_from_db()
        assert dataset.nucleus_dataset_id == ""

    def test_a_scene_dataset_cannot_link_to_an_images_dataset_on_nucleus(self, api, admin, fake_nucleus, nucleus_settings):
        with_permission(admin, "labeling.add_dataset")
        created = api.post("/api/v1/datasets/", {"name": "Drives", "kind": "scenes", "nucleus_dataset_id": fake_nucleus.create_dataset("images")}, format="json")

        assert created.status_code == 400
        assert created.json()["errors"][0]["field"] == "nucleus_dataset_id"
        assert "is an images dataset on Nucleus; this is a scene dataset" in created.json()["errors"][0]["message"]
        assert not Dataset.objects.filter(name="Drives").exists()

    def test_an_images_dataset_cannot_link_to_a_scene_dataset_on_nucleus(self, api, dataset, fake_nucleus, nucleus_settings):
        response = link(api, dataset, fake_nucleus.create_dataset("drives", is_scene=True))

        assert response.status_code == 400
        assert "is a scene dataset on Nucleus; this is an images dataset" in response.json()["errors"][0]["message"]

    def test_without_an_api_key_the_link_is_stored_with_a_warning(self, api, dataset, settings):
        settings.NUCLEUS_API_KEY = ""

        response = link(api, dataset, "ds_unchecked")

        assert response.status_code == 200
        assert response.json()["warnings"] == [
            "nucleus_dataset_id 'ds_unchecked' was stored without checking it on Nucleus: NUCLEUS_API_KEY is not set on the server."
        ]

    def test_with_nucleus_down_the_link_is_stored_with_a_warning(self, api, dataset, fake_nucleus, nucleus_settings):
        fake_nucleus.fail_next(503, route="info")

        response = link(api, dataset, "ds_1")

        assert response.status_code == 200
        assert "HTTP 503" in response.json()["warnings"][0]

    def test_a_rename_does_not_ask_nucleus_again(self, api, dataset, fake_nucleus, nucleus_settings):
        dataset.nucleus_dataset_id = fake_nucleus.create_dataset("clothing")
        dataset.save()

        response = api.patch(f"/api/v1/datasets/{dataset.id}/", {"name": "Clothes"}, format="json")

        assert response.status_code == 200
        assert not fake_nucleus.requests_to("info")


class TestTheAdmin:
    def change(self, client, dataset, nucleus_dataset_id):
        url = reverse("admin:labeling_dataset_change", args=[dataset.id])
        data = {
            "name": dataset.name, "kind": dataset.kind, "nucleus_dataset_id": nucleus_dataset_id,
            "memberships-TOTAL_FORMS": "0", "memberships-INITIAL_FORMS": "0",
        }
        return client.post(url, data, follow=True)

    def test_an_unknown_id_is_a_form_error_on_the_field(self, client, superuser, dataset, fake_nucleus, nucleus_settings):
        client.force_login(superuser)

        response = self.change(client, dataset, "ds_missing")

        assert "Nucleus has no dataset" in str(response.context["adminform"].form.errors["nucleus_dataset_id"])
        dataset.refresh_from_db()
        assert dataset.nucleus_dataset_id == ""

    def test_a_known_id_is_saved(self, client, superuser, dataset, fake_nucleus, nucleus_settings):
        client.force_login(superuser)
        remote_id = fake_nucleus.create_dataset("clothing")

        self.change(client, dataset, remote_id)

        dataset.refresh_from_db()
        assert dataset.nucleus_dataset_id == remote_id

    def test_without_an_api_key_it_is_saved_with_a_warning(self, client, superuser, dataset, settings):
        settings.NUCLEUS_API_KEY = ""
        client.force_login(superuser)

        response = self.change(client, dataset, "ds_unchecked")

        dataset.refresh_from_db()
        assert dataset.nucleus_dataset_id == "ds_unchecked"
        assert any("NUCLEUS_API_KEY is not set" in str(message) for message in response.context["messages"])
