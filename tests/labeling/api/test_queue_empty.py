"""When the queue has nothing left for a labeler, next/ (204) and submit-and-next/ (`next: null`) say
in two headers how many items still wait for their images' check and how many failed it, so the
labeling page's "all done" can say that more is coming, or that some never will."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from labeling.models import Item, Task
from labeling.services.items import scene_create
from taxonomies.services import taxonomy_create
from tests.factories import DatasetFactory, DatasetMemberFactory, png_upload
from tests.labeling.api.support import item_with_task, token_client, url
from tests.labeling.image_files import png_file

pytestmark = pytest.mark.django_db


def waiting_item(dataset, reference_id: str, image_check: str) -> Item:
    """An uploaded item whose check is pending, or failed, with its task waiting (as the upload and
    the verification leave them)."""
    item = Item.objects.create(
        dataset=dataset, reference_id=reference_id, image=f"items/{dataset.pk}/{reference_id}.png", image_check=image_check,
        image_error="The image could not be decoded (truncated)." if image_check == "failed" else "",
    )
    Task.objects.create(dataset=dataset, item=item, state=Task.State.WAITING)
    return item


@pytest.fixture
def queue(dataset, labeler):
    """One item to label; three being checked, two failed; and another dataset's waiting items."""
    taxonomy_create(dataset=dataset, taxonomy_name="clothing_type", labels=["shirt", "pants"])
    item_with_task(dataset, "open_1")
    for n in range(3):
        waiting_item(dataset, f"checking_{n}", "pending")
    for n in range(2):
        waiting_item(dataset, f"failed_{n}", "failed")
    other = DatasetFactory(name="Other")
    for n in range(4):
        waiting_item(other, f"other_{n}", "failed")
    return token_client(labeler)


def headers_of(response) -> tuple[str | None, str | None]:
    return response.headers.get("Queue-Checking"), response.headers.get("Queue-Failed")


def test_next_hands_out_work_without_the_headers(queue, dataset):
    response = queue.post(url("next", dataset_id=dataset.id))
    assert response.status_code == 200 and headers_of(response) == (None, None)


def test_submit_and_next_says_what_is_still_being_checked_and_what_failed(queue, dataset):
    queue.post(url("next", dataset_id=dataset.id))
    response = queue.post(
        url("submit-and-next", dataset_id=dataset.id),
        {"reference_id": "open_1", "annotations": [{"taxonomy_name": "clothing_type", "label": "shirt"}]},
        format="json",
    )
    assert response.status_code == 200 and response.json()["next"] is None
    assert headers_of(response) == ("3", "2")


def test_next_with_nothing_left_says_it_in_one_more_query(queue, dataset):
    Task.objects.filter(item__reference_id="open_1").update(state=Task.State.DONE)
    with CaptureQueriesContext(connection) as captured:
        response = queue.post(url("next", dataset_id=dataset.id))
    assert response.status_code == 204 and headers_of(response) == ("3", "2")
    # The token's lookup, the claim that finds nothing (asked twice: task_next's race with an expiring
    # lease), and one count over the waiting tasks: only this answer pays for the headers.
    assert len(captured) == 4


def test_an_item_passing_its_check_is_counted_in_the_queue_not_in_the_headers(queue, dataset):
    Task.objects.filter(item__reference_id="open_1").update(state=Task.State.DONE)
    Item.objects.filter(reference_id="checking_0").update(image_check="ok")
    Task.objects.filter(item__reference_id="checking_0").update(state=Task.State.OPEN)
    assert queue.post(url("next", dataset_id=dataset.id)).status_code == 200
    Task.objects.filter(item__reference_id="checking_0").update(state=Task.State.DONE, holder=None, lease_expires_at=None)
    assert headers_of(queue.post(url("next", dataset_id=dataset.id))) == ("2", "2")


def test_a_scene_with_a_failed_frame_is_counted_as_failed(labeler, django_capture_on_commit_callbacks):
    scenes = DatasetFactory(name="Drives", kind="scenes")
    DatasetMemberFactory(dataset=scenes, user=labeler, role="labeler")
    with django_capture_on_commit_callbacks(execute=True):
        truncated = png_file("cut.png", png_upload().read()[:60])
        scene_create(dataset=scenes, reference_id="bad", frame_rate=5, frames=[{"reference_id": "b0", "image_file": truncated}])
    with django_capture_on_commit_callbacks(execute=False):
        scene_create(dataset=scenes, reference_id="later", frame_rate=5, frames=[{"reference_id": "l0", "image_file": png_upload()}])
    response = token_client(labeler).post(url("next", dataset_id=scenes.id))
    assert response.status_code == 204 and headers_of(response) == ("1", "1")
