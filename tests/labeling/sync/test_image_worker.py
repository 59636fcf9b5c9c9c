"""The verification of uploads on a real Celery worker process and the real Redis broker: the
request commits, publishes `labeling.items_verify_images`, and the worker decodes each image in a
child process under the IMAGE_VERIFY_* limits. Skipped without TEST_REDIS_URL (see test_worker.py,
whose worker, queue and database plumbing this reuses)."""

import os

import pytest

from labeling.models import Item
from labeling.services.items import items_import
from tests.factories import png_upload
from tests.labeling.image_files import flat_png, png_file
from tests.labeling.sync.test_worker import Worker, broker_url, queue, wait_for  # noqa: F401 (fixtures)

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not os.environ.get("TEST_REDIS_URL"), reason="TEST_REDIS_URL is not set: no Redis for a real worker"),
]


def test_a_worker_verifies_uploads_making_good_ones_open_and_a_bomb_failed(dataset, queue, broker_url, fake_nucleus, tmp_path, settings):  # noqa: F811
    rows = [
        {"reference_id": "good", "image_file": png_upload(size=(30, 20))},
        {"reference_id": "bomb", "image_file": png_file("bomb.png", flat_png(6000, 6000))},  # 144 MB of pixels
    ]
    items_import(dataset=dataset, rows=rows)  # commits, then publishes; no worker runs yet
    assert set(Item.objects.values_list("image_check", "task__state")) == {("pending", "waiting")}
    worker = Worker(
        queue=queue, broker_url=broker_url, fake=fake_nucleus, log=tmp_path / "worker.log",
        MEDIA_ROOT=str(settings.MEDIA_ROOT), IMAGE_VERIFY_MEMORY_MB="128",
    )
    try:
        wait_for(lambda: not Item.objects.filter(image_check="pending").exists(), timeout=60, what=f"the verification\n{worker.output()}")
    finally:
        worker.stop()
    found = {item.reference_id: (item.image_check, item.task.state, item.width, item.image_error) for item in Item.objects.select_related("task")}
    assert found == {
        "good": ("ok", "open", 30, ""),
        "bomb": ("failed", "waiting", 6000, "Decoding the image needs more than the 128 MB of memory allowed (IMAGE_VERIFY_MEMORY_MB)."),
    }
