"""The labeling page's "all done" when some of the dataset's items are still being checked, or
failed their check: it says so, with the counts the server gives when the queue is empty (not the
ones the page was loaded with)."""

import pytest

from labeling.models import Item, Task
from tests.labeling.browser.test_label_page import (  # noqa: F401 (taxonomies: the page tests' fixture)
    open_label_page,
    taxonomies,
    upload_items,
    wait_all_done,
    wait_shown,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def waiting_items(dataset, image_check: str, count: int) -> list[Item]:
    """Uploaded items whose check is pending, or failed, their tasks waiting (as the upload and the
    verification leave them; never handed out, so their files are never read)."""
    items = []
    for n in range(count):
        item = Item.objects.create(
            dataset=dataset, reference_id=f"{image_check}_{n}", image=f"items/{dataset.pk}/{image_check}_{n}.png", image_check=image_check,
            image_error="The image could not be decoded (truncated)." if image_check == "failed" else "",
        )
        Task.objects.create(dataset=dataset, item=item, state=Task.State.WAITING)
        items.append(item)
    return items


def all_done_text(page) -> dict:
    return page.evaluate("""() => Object.fromEntries(['all-done-title', 'all-done-checking', 'all-done-failed'].map(
        (id) => [id, document.getElementById(id).hidden ? null : document.getElementById(id).textContent]))""")


def test_all_done_says_what_is_still_being_checked_and_what_failed(new_page, dataset, labeler, taxonomies):
    upload_items(dataset, 1)
    checking = waiting_items(dataset, "pending", 3)
    waiting_items(dataset, "failed", 2)
    page = new_page(labeler)
    open_label_page(page, dataset)
    wait_shown(page, "image_1")
    # While the labeler works, one more image fails its check: the page learns it from the server.
    Item.objects.filter(pk=checking[0].pk).update(image_check="failed", image_error="The image could not be decoded.")
    page.keyboard.press("1")
    page.keyboard.press("Enter")
    wait_all_done(page)
    assert all_done_text(page) == {
        "all-done-title": "Nothing to label right now",
        "all-done-checking": "2 images are still being checked; they come into the queue when they pass.",
        "all-done-failed": "3 images failed their check: see the admin.",
    }
    assert page.errors == []


def test_an_empty_queue_on_opening_says_it_too(new_page, dataset, labeler, taxonomies):
    waiting_items(dataset, "pending", 1)
    page = new_page(labeler)
    open_label_page(page, dataset)
    wait_all_done(page)
    assert all_done_text(page) == {
        "all-done-title": "Nothing to label right now",
        "all-done-checking": "1 image is still being checked; it comes into the queue when it passes.",
        "all-done-failed": None,
    }
    Item.objects.update(image_check="failed")
    page.reload()
    wait_all_done(page)
    assert all_done_text(page) == {
        "all-done-title": "All done", "all-done-checking": None, "all-done-failed": "1 image failed its check: see the admin.",
    }
    assert page.errors == []
