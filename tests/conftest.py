"""The fixed cast of every test: a dataset with an admin, a labeler, and an outsider who must be refused."""

import pytest

from labeling.models import DatasetMember
from labeling.selectors import _taxonomies_in_memory
from tests.factories import DatasetFactory, DatasetMemberFactory, UserFactory


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """Users are made in almost every test; the default hasher's deliberate slowness would dominate."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def no_taxonomies_kept_from_other_tests():
    """Each test starts with the per-process taxonomy cache empty, as a fresh server process does."""
    _taxonomies_in_memory.clear()


@pytest.fixture(autouse=True)
def media_in_tmp_path(settings, tmp_path):
    """Uploaded files go to a per-test folder, never into the project's media/."""
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def dataset(db):
    return DatasetFactory(name="Clothing")


@pytest.fixture
def admin(dataset):
    return DatasetMemberFactory(dataset=dataset, user=UserFactory(username="alice"), role=DatasetMember.Role.ADMIN).user


@pytest.fixture
def labeler(dataset):
    return DatasetMemberFactory(dataset=dataset, user=UserFactory(username="bob"), role=DatasetMember.Role.LABELER).user


@pytest.fixture
def outsider(db):
    return UserFactory(username="charlie")


@pytest.fixture
def superuser(db):
    return UserFactory(username="root", is_staff=True, is_superuser=True)


@pytest.fixture
def fake_nucleus():
    """A fake Nucleus on 127.0.0.1 for the SDK to talk to (tests/fake_nucleus.py): no test reaches the real one."""
    from tests.fake_nucleus import FakeNucleus

    with FakeNucleus(api_key="test-key") as fake:
        yield fake
