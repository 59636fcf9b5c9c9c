"""Who may create a dataset: superusers and users given labeling.add_dataset, through the API and
the Django admin. A refused create says nothing about other datasets (their names, Nucleus links)."""

import pytest
from django.urls import reverse

from labeling.models import Dataset, DatasetMember
from tests.factories import DatasetFactory, UserFactory, with_permission
from tests.labeling.api.support import row_counts, token_client, url

pytestmark = pytest.mark.django_db


@pytest.fixture
def linked_other(db) -> Dataset:
    return DatasetFactory(name="Secret vehicles", nucleus_dataset_id="ds_secret_42")


def create(user, body):
    return token_client(user).post(url("dataset-list"), body, format="json")


@pytest.mark.parametrize(
    "body",
    [
        {"name": "Secret vehicles"},
        {"name": "Mine", "nucleus_dataset_id": "ds_secret_42"},
        {"name": "", "kind": "pointclouds"},
    ],
    ids=["taken name", "taken nucleus link", "bad body"],
)
def test_a_user_without_the_permission_is_refused_before_anything_is_checked(outsider, linked_other, body):
    before = row_counts()
    response = create(outsider, body)
    assert response.status_code == 403
    text = response.content.decode()
    assert "Secret vehicles" not in text and "ds_secret_42" not in text and "exists" not in text
    assert "You may not create datasets; ask an administrator for the labeling.add_dataset permission." in text
    assert row_counts() == before


def test_a_user_given_the_permission_creates_one_and_becomes_its_admin(outsider):
    response = create(with_permission(outsider, "labeling.add_dataset"), {"name": "Shoes"})
    assert response.status_code == 201
    assert DatasetMember.objects.get(dataset__name="Shoes", user=outsider).role == "admin"


def test_a_superuser_may_create_one(superuser):
    assert create(superuser, {"name": "Shoes"}).status_code == 201


def test_with_the_permission_a_taken_name_is_a_400(outsider, linked_other):
    response = create(with_permission(outsider, "labeling.add_dataset"), {"name": "Secret vehicles"})
    assert response.status_code == 400


class TestTheAdminAddPage:
    def staff(self, *permissions):
        user = UserFactory(username="stella", is_staff=True)
        for permission in permissions:
            user = with_permission(user, permission)
        return user

    def test_a_staff_user_without_the_permission_cannot_open_it(self, client):
        client.force_login(self.staff("labeling.view_dataset", "labeling.change_dataset"))
        assert client.get(reverse("admin:labeling_dataset_add")).status_code == 403

    def test_a_staff_user_with_it_creates_a_dataset_they_then_manage(self, client):
        staff = self.staff("labeling.add_dataset", "labeling.view_dataset", "labeling.change_dataset")
        client.force_login(staff)
        data = {
            "name": "Shoes", "kind": "images", "nucleus_dataset_id": "",
            "memberships-TOTAL_FORMS": "0", "memberships-INITIAL_FORMS": "0", "memberships-MIN_NUM_FORMS": "0", "memberships-MAX_NUM_FORMS": "1000",
        }
        response = client.post(reverse("admin:labeling_dataset_add"), data)
        assert response.status_code == 302, response.content.decode()[:2000]
        dataset = Dataset.objects.get(name="Shoes")
        assert DatasetMember.objects.get(dataset=dataset, user=staff).role == "admin"
        assert client.get(reverse("admin:labeling_dataset_change", args=[dataset.pk])).status_code == 200
