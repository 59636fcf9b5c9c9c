"""datasets/{id}/members/ and datasets/{id}/members/{username}/: who is in a dataset, in which role."""

import pytest

from labeling.models import DatasetMember
from tests.factories import DatasetMemberFactory, UserFactory
from tests.labeling.api.support import errors_of, row_counts, url

pytestmark = pytest.mark.django_db


def roles(dataset) -> dict[str, str]:
    return dict(DatasetMember.objects.filter(dataset=dataset).values_list("user__username", "role"))


def test_it_lists_the_members_by_username(labeler_client, dataset, admin, labeler):
    response = labeler_client.get(url("member-list", dataset_id=dataset.id))
    assert response.status_code == 200
    assert response.json() == [{"username": "alice", "role": "admin"}, {"username": "bob", "role": "labeler"}]


def test_an_admin_adds_a_member_by_username(admin_client, dataset, outsider):
    response = admin_client.post(url("member-list", dataset_id=dataset.id), {"username": "charlie", "role": "labeler"}, format="json")
    assert (response.status_code, response.json()) == (201, {"username": "charlie", "role": "labeler"})
    assert roles(dataset)["charlie"] == "labeler"


def test_adding_a_member_twice_changes_their_role_instead_of_adding_them_again(admin_client, dataset, labeler):
    response = admin_client.post(url("member-list", dataset_id=dataset.id), {"username": "bob", "role": "admin"}, format="json")
    assert response.status_code == 201
    assert DatasetMember.objects.filter(dataset=dataset, user=labeler).count() == 1
    assert roles(dataset)["bob"] == "admin"


def test_it_refuses_an_unknown_username(admin_client, dataset):
    before = row_counts()
    response = admin_client.post(url("member-list", dataset_id=dataset.id), {"username": "nobody", "role": "labeler"}, format="json")
    assert response.status_code == 400
    assert errors_of(response) == [{"field": "username", "message": "No user has this username."}]
    assert row_counts() == before


def test_it_refuses_an_unknown_role(admin_client, dataset, outsider):
    before = row_counts()
    response = admin_client.post(url("member-list", dataset_id=dataset.id), {"username": "charlie", "role": "owner"}, format="json")
    assert response.status_code == 400
    assert errors_of(response) == [{"field": "role", "message": '"owner" is not a valid choice.'}]
    assert row_counts() == before


def test_an_admin_changes_a_members_role(admin_client, dataset, labeler):
    response = admin_client.patch(url("member-detail", dataset_id=dataset.id, username="bob"), {"role": "admin"}, format="json")
    assert (response.status_code, response.json()) == (200, {"username": "bob", "role": "admin"})
    assert roles(dataset)["bob"] == "admin"


def test_an_admin_removes_a_member(admin_client, dataset, labeler):
    response = admin_client.delete(url("member-detail", dataset_id=dataset.id, username="bob"))
    assert response.status_code == 204
    assert "bob" not in roles(dataset)


def test_changing_the_role_of_a_user_who_is_not_a_member_is_not_found(admin_client, dataset, outsider):
    response = admin_client.patch(url("member-detail", dataset_id=dataset.id, username="charlie"), {"role": "admin"}, format="json")
    assert response.status_code == 404
    assert "charlie" not in roles(dataset)


def test_the_last_admin_cannot_be_demoted(admin_client, dataset, admin, labeler):
    response = admin_client.patch(url("member-detail", dataset_id=dataset.id, username="alice"), {"role": "labeler"}, format="json")
    assert response.status_code == 400
    assert errors_of(response) == [{"field": "role", "message": "This is the dataset's last admin; make someone else admin first."}]
    assert roles(dataset)["alice"] == "admin"


def test_the_last_admin_cannot_be_demoted_by_adding_them_again(admin_client, dataset, admin):
    response = admin_client.post(url("member-list", dataset_id=dataset.id), {"username": "alice", "role": "labeler"}, format="json")
    assert response.status_code == 400
    assert roles(dataset)["alice"] == "admin"


def test_the_last_admin_cannot_be_removed(admin_client, dataset, admin):
    response = admin_client.delete(url("member-detail", dataset_id=dataset.id, username="alice"))
    assert response.status_code == 400
    assert errors_of(response) == [{"field": "role", "message": "This is the dataset's last admin; make someone else admin first."}]
    assert roles(dataset)["alice"] == "admin"


def test_an_admin_may_step_down_once_there_is_another_admin(admin_client, dataset, admin):
    DatasetMemberFactory(dataset=dataset, user=UserFactory(username="dana"), role=DatasetMember.Role.ADMIN)
    response = admin_client.patch(url("member-detail", dataset_id=dataset.id, username="alice"), {"role": "labeler"}, format="json")
    assert response.status_code == 200
    assert roles(dataset) == {"alice": "labeler", "dana": "admin"}
