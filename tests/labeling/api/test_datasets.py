"""datasets/ and datasets/{id}/: list, create, read, rename."""

import pytest

from labeling.models import Dataset, DatasetMember
from tests.factories import DatasetFactory, DatasetMemberFactory, with_permission
from tests.labeling.api.support import errors_of, row_counts, token_client, url

pytestmark = pytest.mark.django_db


class TestList:
    def test_it_lists_only_the_datasets_the_user_belongs_to_with_their_role(self, admin_client, dataset, other_dataset, admin):
        labeled = DatasetFactory(name="Shoes")
        DatasetMemberFactory(dataset=labeled, user=admin, role=DatasetMember.Role.LABELER)
        response = admin_client.get(url("dataset-list"))
        assert response.status_code == 200
        assert [(row["name"], row["role"]) for row in response.json()] == [("Clothing", "admin"), ("Shoes", "labeler")]

    def test_each_dataset_is_described_in_nucleus_vocabulary(self, admin_client, dataset):
        (row,) = admin_client.get(url("dataset-list")).json()
        assert set(row) == {"id", "name", "kind", "nucleus_dataset_id", "nucleus_push_items", "role", "created_at"}
        assert (row["id"], row["kind"], row["nucleus_dataset_id"]) == (dataset.id, "images", "")

    def test_an_outsider_sees_no_dataset(self, outsider_client, dataset):
        response = outsider_client.get(url("dataset-list"))
        assert (response.status_code, response.json()) == (200, [])


@pytest.fixture
def creator(outsider):
    """A user who belongs to no dataset and may create them (labeling.add_dataset)."""
    return with_permission(outsider, "labeling.add_dataset")


@pytest.fixture
def creator_client(creator):
    return token_client(creator)


class TestCreate:
    def test_it_creates_a_dataset_whose_creator_is_its_admin(self, creator_client, creator):
        response = creator_client.post(
            url("dataset-list"), {"name": "Street scenes", "kind": "scenes", "nucleus_dataset_id": "ds_123"}, format="json"
        )
        assert response.status_code == 201
        body = response.json()
        assert (body["name"], body["kind"], body["nucleus_dataset_id"], body["role"]) == ("Street scenes", "scenes", "ds_123", "admin")
        assert DatasetMember.objects.get(dataset_id=body["id"], user=creator).role == DatasetMember.Role.ADMIN

    def test_a_dataset_holds_images_unless_told_otherwise(self, creator_client):
        response = creator_client.post(url("dataset-list"), {"name": "Shoes"}, format="json")
        assert (response.status_code, response.json()["kind"]) == (201, "images")

    def test_it_refuses_an_unknown_kind_and_stores_nothing(self, creator_client):
        before = row_counts()
        response = creator_client.post(url("dataset-list"), {"name": "Clouds", "kind": "pointclouds"}, format="json")
        assert response.status_code == 400
        assert [(error["field"], error["message"]) for error in errors_of(response)] == [
            ("kind", '"pointclouds" is not a valid choice.')
        ]
        assert row_counts() == before

    def test_it_refuses_a_name_another_dataset_has(self, creator_client, dataset):
        before = row_counts()
        response = creator_client.post(url("dataset-list"), {"name": "Clothing"}, format="json")
        assert response.status_code == 400
        (error,) = errors_of(response)
        assert error["field"] == "name" and "already exists" in error["message"]
        assert row_counts() == before

    def test_it_refuses_a_blank_name(self, creator_client):
        response = creator_client.post(url("dataset-list"), {"name": "  "}, format="json")
        assert response.status_code == 400
        assert [error["field"] for error in errors_of(response)] == ["name"]
        assert not Dataset.objects.exists()


class TestDetail:
    def test_it_shows_the_dataset_with_the_users_role(self, labeler_client, dataset):
        response = labeler_client.get(url("dataset-detail", dataset_id=dataset.id))
        assert response.status_code == 200
        assert (response.json()["name"], response.json()["role"]) == ("Clothing", "labeler")

    def test_an_admin_renames_the_dataset_and_links_it_to_nucleus(self, admin_client, dataset):
        response = admin_client.patch(
            url("dataset-detail", dataset_id=dataset.id), {"name": "Garments", "nucleus_dataset_id": "ds_9"}, format="json"
        )
        assert response.status_code == 200
        assert (response.json()["name"], response.json()["nucleus_dataset_id"], response.json()["role"]) == ("Garments", "ds_9", "admin")
        dataset.refresh_from_db()
        assert (dataset.name, dataset.nucleus_dataset_id) == ("Garments", "ds_9")

    def test_a_patch_leaves_the_fields_it_does_not_name(self, admin_client, dataset):
        dataset.nucleus_dataset_id = "ds_1"
        dataset.save()
        admin_client.patch(url("dataset-detail", dataset_id=dataset.id), {"name": "Garments"}, format="json")
        dataset.refresh_from_db()
        assert dataset.nucleus_dataset_id == "ds_1"

    def test_it_refuses_a_nucleus_dataset_another_dataset_is_linked_to(self, admin_client, dataset, other_dataset):
        other_dataset.nucleus_dataset_id = "ds_taken"
        other_dataset.save()
        response = admin_client.patch(url("dataset-detail", dataset_id=dataset.id), {"nucleus_dataset_id": "ds_taken"}, format="json")
        assert response.status_code == 400
        assert [error["message"] for error in errors_of(response)] == ["Another dataset is already linked to this Nucleus dataset."]
        dataset.refresh_from_db()
        assert dataset.nucleus_dataset_id == ""

    def test_a_superuser_is_admin_of_every_dataset(self, dataset, superuser):
        response = token_client(superuser).get(url("dataset-detail", dataset_id=dataset.id))
        assert (response.status_code, response.json()["role"]) == (200, "admin")
