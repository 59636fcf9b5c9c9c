"""The API's cast: one `APIClient` per member of the fixed cast (alice the admin, bob the labeler,
charlie the outsider), each signing in with its own token as a script would, an anonymous client,
and the rows most API tests start from."""

import pytest
from rest_framework.test import APIClient

from labeling.models import Dataset, DatasetMember, Item
from tests.factories import DatasetFactory, DatasetMemberFactory, UserFactory
from tests.labeling.api.support import item_with_task, token_client


@pytest.fixture
def admin_client(admin) -> APIClient:
    return token_client(admin)


@pytest.fixture
def labeler_client(labeler) -> APIClient:
    return token_client(labeler)


@pytest.fixture
def outsider_client(outsider) -> APIClient:
    return token_client(outsider)


@pytest.fixture
def anonymous_client(db) -> APIClient:
    return APIClient()


@pytest.fixture
def other_dataset(db) -> Dataset:
    """A dataset none of the cast belongs to, run by dave."""
    dataset = DatasetFactory(name="Vehicles")
    DatasetMemberFactory(dataset=dataset, user=UserFactory(username="dave"), role=DatasetMember.Role.ADMIN)
    return dataset


@pytest.fixture
def scene_dataset(admin, labeler) -> Dataset:
    """A scene dataset with the same admin and labeler as `dataset`."""
    dataset = DatasetFactory(name="Street scenes", kind=Dataset.Kind.SCENES)
    DatasetMemberFactory(dataset=dataset, user=admin, role=DatasetMember.Role.ADMIN)
    DatasetMemberFactory(dataset=dataset, user=labeler, role=DatasetMember.Role.LABELER)
    return dataset


@pytest.fixture
def items(dataset) -> list[Item]:
    """Three items by URL, each with its queue task, in queue order."""
    return [item_with_task(dataset, f"image_{n}") for n in range(1, 4)]
