"""The cast of the item tests: the sync's fake Nucleus, its settings and the linked dataset
(tests/labeling/sync/conftest.py), and a linked scene dataset."""

import pytest

from labeling.models import Dataset, DatasetMember
from tests.factories import DatasetFactory, DatasetMemberFactory
from tests.labeling.sync.conftest import linked, nucleus_settings  # noqa: F401 (fixtures)


@pytest.fixture
def linked_scenes(admin, fake_nucleus, nucleus_settings):  # noqa: F811
    dataset = DatasetFactory(
        name="Street scenes", kind=Dataset.Kind.SCENES, nucleus_dataset_id=fake_nucleus.create_dataset("street", is_scene=True)
    )
    DatasetMemberFactory(dataset=dataset, user=admin, role=DatasetMember.Role.ADMIN)
    return dataset
