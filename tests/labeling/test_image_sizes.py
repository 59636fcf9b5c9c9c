"""Sizes of images known only by URL, filled in by the background task through the safe fetch."""

import pytest

from labeling.models import Item
from labeling.services.images import item_image_sizes_fill, item_image_sizes_request
from labeling.services.items import items_import
from tests.factories import ItemFactory
from tests.labeling.test_remote_images import running_server, server  # noqa: F401 (fixtures)

pytestmark = pytest.mark.django_db


@pytest.fixture
def allow_loopback(settings):
    settings.REMOTE_IMAGE_ALLOWED_NETWORKS = ["127.0.0.0/8"]


def test_it_fills_the_size_of_an_image_on_an_allowed_network(server, allow_loopback):  # noqa: F811
    item = ItemFactory(image_url=f"http://127.0.0.1:{server.port}/image.png")
    assert item_image_sizes_fill(item_ids=[item.id]) == 1
    item.refresh_from_db()
    assert (item.width, item.height) == (64, 48)


def test_it_never_fetches_a_loopback_url_without_the_allow_list(server):  # noqa: F811
    item = ItemFactory(image_url=f"http://127.0.0.1:{server.port}/image.png")
    assert item_image_sizes_fill(item_ids=[item.id]) == 0
    item.refresh_from_db()
    assert item.width is None
    assert server.requests == []


def test_running_it_again_changes_nothing(server, allow_loopback):  # noqa: F811
    item = ItemFactory(image_url=f"http://127.0.0.1:{server.port}/image.png")
    item_image_sizes_fill(item_ids=[item.id])
    fetched = len(server.requests)
    assert item_image_sizes_fill(item_ids=[item.id]) == 0
    assert len(server.requests) == fetched


def test_an_import_asks_for_sizes_after_commit_only_when_enabled(dataset, settings, django_capture_on_commit_callbacks, monkeypatch):
    sent = []
    monkeypatch.setattr("labeling.tasks.items_fill_image_sizes.delay", sent.append)
    items = items_import(dataset=dataset, rows=[{"reference_id": f"r{i}", "image_url": f"https://a.test/{i}.jpg"} for i in range(3)])

    settings.REMOTE_IMAGE_SIZES = False
    with django_capture_on_commit_callbacks(execute=True):
        item_image_sizes_request(items=items)
    assert sent == []

    settings.REMOTE_IMAGE_SIZES = True
    with django_capture_on_commit_callbacks(execute=True):
        item_image_sizes_request(items=items)
    assert sent == [[item.id for item in Item.objects.order_by("id")]]
