"""The taxonomies most labeling tests start from: a single-label and a multi-label one."""

import pytest

from taxonomies.models import Taxonomy
from taxonomies.services import taxonomy_create


@pytest.fixture
def clothing_type(dataset) -> Taxonomy:
    return taxonomy_create(dataset=dataset, taxonomy_name="clothing_type", labels=["shirt", "pants", "dress"])


@pytest.fixture
def attributes(dataset) -> Taxonomy:
    return taxonomy_create(
        dataset=dataset, taxonomy_name="attributes", labels=["striped", "logo", "long_sleeves"], multi_label=True
    )
