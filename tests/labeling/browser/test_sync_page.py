"""The sync page in a real browser, driven from the keyboard: reached from the dataset list, its
counts and failures, Retry failed and Sync now (plain forms: the page has no script at all)."""

import pytest
from django.utils import timezone

from labeling.models import CategoryAnnotation
from taxonomies.services import taxonomy_create
from tests.factories import CategoryAnnotationFactory, ItemFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
State = CategoryAnnotation.SyncState


@pytest.fixture
def clothing_type(dataset):
    return taxonomy_create(dataset=dataset, taxonomy_name="clothing_type", labels=["shirt", "pants"])


def finished(taxonomy, reference_id: str, state: str, error: str = "") -> CategoryAnnotation:
    item = ItemFactory(dataset=taxonomy.dataset, reference_id=reference_id)
    return CategoryAnnotationFactory(
        item=item, taxonomy=taxonomy, label=taxonomy.labels.first(), status=CategoryAnnotation.Status.FINISHED,
        finished_at=timezone.now(), sync_state=state, sync_error=error,
    )


def tab_to(page, name: str, limit: int = 30) -> None:
    """Press Tab until the focused element's text is `name`, as a keyboard user would."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement.textContent.trim()") == name:
            return
    raise AssertionError(f"{name!r} cannot be reached with Tab")


def count(page, state: str) -> str:
    return page.locator(f'[data-count="{state}"]').text_content()


def test_an_admin_reaches_the_page_and_retries_failures_from_the_keyboard(new_page, admin, clothing_type):
    finished(clothing_type, "image_1", State.FAILED, error="Label 'shirt' is not in taxonomy clothing_type <b>")
    finished(clothing_type, "image_2", State.SYNCED)
    page = new_page(admin)
    page.goto("/")

    tab_to(page, "Sync")
    page.keyboard.press("Enter")

    page.wait_for_url(f"**/datasets/{clothing_type.dataset_id}/sync/")
    assert (count(page, "failed"), count(page, "synced")) == ("1", "1")
    row = page.locator("tr[data-annotation-id]")
    assert row.locator("td").all_text_contents()[:4] == ["image_1", "clothing_type", "shirt", "0"]
    assert row.locator("td.error").text_content() == "Label 'shirt' is not in taxonomy clothing_type <b>"
    assert page.locator("script").count() == 0

    tab_to(page, "Retry failed (1)")
    page.keyboard.press("Enter")

    page.get_by_text("1 failed annotation(s) are pending again.").wait_for()
    assert (count(page, "failed"), count(page, "pending")) == ("0", "1")
    assert page.get_by_role("button", name="Retry failed (0)").is_disabled()
    assert page.errors == []


def test_sync_now_sends_the_pending_annotations_to_nucleus(new_page, admin, clothing_type, fake_nucleus, settings):
    settings.NUCLEUS_API_KEY, settings.NUCLEUS_ENDPOINT = fake_nucleus.api_key, fake_nucleus.endpoint
    dataset = clothing_type.dataset
    dataset.nucleus_dataset_id = fake_nucleus.create_dataset("clothing")
    dataset.save()
    fake_nucleus.add_items(dataset.nucleus_dataset_id, [{"reference_id": "image_1", "image_url": "https://x.example.com/1.jpg"}])
    finished(clothing_type, "image_1", State.PENDING)
    page = new_page(admin)
    page.goto(f"/datasets/{dataset.id}/sync/")
    assert count(page, "pending") == "1"

    tab_to(page, "Sync now")
    page.keyboard.press("Enter")

    page.get_by_text("A sync was started.").wait_for()
    assert (count(page, "pending"), count(page, "synced")) == ("0", "1")
    assert fake_nucleus.labels(dataset.nucleus_dataset_id) == {("image_1", "clothing_type"): "shirt"}


def test_the_page_says_why_the_sync_waits(new_page, admin, dataset, settings):
    settings.NUCLEUS_API_KEY = ""
    page = new_page(admin)

    page.goto(f"/datasets/{dataset.id}/sync/")

    assert "NUCLEUS_API_KEY is not set on the server" in page.get_by_role("alert").text_content()
