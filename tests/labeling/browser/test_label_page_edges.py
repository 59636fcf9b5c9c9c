"""The labeling page's rough edges, in a real browser: the keys it takes are the ones the server
serves (and validation reserves), required taxonomies below the fold, a cleared multi-label answer,
and the metadata editor."""

import pytest

from labeling.models import CategoryAnnotation
from taxonomies.models import PAGE_KEYS
from taxonomies.services import taxonomy_create
from tests.labeling.browser.test_label_page import (  # noqa: F401 (fixtures)
    open_label_page,
    pressed,
    stored,
    taxonomies,
    three_items,
    upload_items,
    wait_for,
    wait_shown,
    wait_until,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

def test_the_page_takes_no_key_it_is_not_served(new_page, dataset, labeler):
    """Every printable key outside the served list is pressed on an item whose labels have no
    hotkeys: the page must take none of them (a key the page handles without it being in PAGE_KEYS,
    and so allowed as a hotkey, fails here)."""
    taxonomy_create(dataset=dataset, taxonomy_name="clothing_type", labels=["shirt", "pants"])
    upload_items(dataset, 1)
    page = new_page(labeler)
    open_label_page(page, dataset)
    wait_shown(page, "image_1")
    assert page.evaluate("JSON.parse(document.getElementById('label-page-data').textContent).keys") == {
        action: list(keys) for action, keys in PAGE_KEYS.items()
    }
    served = {key for keys in PAGE_KEYS.values() for key in keys}
    others = [chr(code) for code in range(0x20, 0x7F) if chr(code) not in served]

    taken = page.evaluate("""(keys) => keys.filter((key) =>
        !document.body.dispatchEvent(new KeyboardEvent("keydown", { key, bubbles: true, cancelable: true })))""", others)

    assert taken == []
    assert len(others) > 70
    assert page.errors == []


def test_zoom_takes_equals_and_underscore_from_the_served_list(new_page, dataset, labeler, three_items):
    page = new_page(labeler)
    open_label_page(page, dataset)
    wait_shown(page, "image_1")
    scale = "() => new DOMMatrix(getComputedStyle(document.querySelector('.stage-image')).transform).a"
    fitted = page.evaluate(scale)
    page.keyboard.press("=")
    assert page.evaluate(scale) == pytest.approx(fitted * 1.25)
    page.keyboard.press("_")
    page.keyboard.press("_")
    assert page.evaluate(scale) == pytest.approx(fitted / 1.25)


def test_required_taxonomies_below_the_fold_are_listed_and_enter_scrolls_to_the_first(new_page, dataset, labeler):
    taxonomy_create(dataset=dataset, taxonomy_name="clothing_type", labels=["shirt", "pants"])
    for n in range(1, 7):
        taxonomy_create(dataset=dataset, taxonomy_name=f"optional_{n}", labels=["a", "b", "c", "d"], required=False)
    taxonomy_create(dataset=dataset, taxonomy_name="quality", labels=["good", "blurry"])
    upload_items(dataset, 2)
    page = new_page(labeler)
    page.set_viewport_size({"width": 900, "height": 420})
    open_label_page(page, dataset)
    wait_shown(page, "image_1")
    assert page.text_content("#still-to-answer") == "Still to answer: clothing_type, quality"
    assert page.is_visible("#still-to-answer")
    quality = page.locator(".taxonomy[data-taxonomy='quality']")
    in_panel = """(section) => {
        const box = section.getBoundingClientRect(), panel = document.getElementById('taxonomies').getBoundingClientRect();
        return box.top >= panel.top - 1 && box.bottom <= panel.bottom + 1;  // subpixel rounding
    }"""
    assert not quality.evaluate(in_panel)  # below the fold of the label panel

    page.keyboard.press("1")  # clothing_type: shirt
    assert page.text_content("#still-to-answer") == "Still to answer: quality"
    assert not quality.evaluate(in_panel)
    page.keyboard.press("Enter")

    assert page.text_content("#message") == "“quality” is required: choose a label."
    assert page.evaluate("document.activeElement.dataset.taxonomy") == "quality"
    wait_for(page, f"() => ({in_panel})(document.querySelector(\".taxonomy[data-taxonomy='quality']\"))")
    page.keyboard.press("2")  # blurry
    assert page.text_content("#still-to-answer") == ""
    assert not page.is_visible("#still-to-answer")
    page.keyboard.press("Enter")
    wait_shown(page, "image_2")
    assert stored(dataset)[("image_1", "quality")][:2] == (["blurry"], "finished")
    assert page.errors == []


def test_a_cleared_multi_label_answer_comes_back_unanswered_and_is_not_submitted(new_page, dataset, labeler, three_items):
    page = new_page(labeler)
    open_label_page(page, dataset)
    wait_shown(page, "image_1")
    page.keyboard.press("t")  # attributes: striped (current: attributes)
    page.goto("/")  # leaving sends the draft
    wait_until(lambda: stored(dataset).get(("image_1", "attributes"), [None])[0] == ["striped"])

    open_label_page(page, dataset)
    wait_shown(page, "image_1")
    assert pressed(page, "attributes") == ["striped"]
    page.keyboard.press("Tab")  # to attributes
    page.keyboard.press("Delete")
    assert pressed(page, "attributes") == []
    page.goto("/")
    wait_until(lambda: ("image_1", "attributes") not in stored(dataset))

    open_label_page(page, dataset)
    wait_shown(page, "image_1")
    assert pressed(page, "attributes") == []  # not "None of these"
    page.keyboard.press("h")  # clothing_type: shirt
    page.keyboard.press("Enter")
    wait_shown(page, "image_2")
    assert stored(dataset) == {("image_1", "clothing_type"): (["shirt"], "finished", 1, "bob")}
    assert page.errors == []


def editor_rows(page, taxonomy_name: str):
    return page.locator(f".taxonomy[data-taxonomy='{taxonomy_name}'] .metadata-row")


def test_the_metadata_editor_opens_from_its_button_keeps_json_types_and_refuses_a_key_given_twice(new_page, dataset, labeler, three_items):
    page = new_page(labeler)
    open_label_page(page, dataset)
    wait_shown(page, "image_1")
    page.keyboard.press("h")  # clothing_type: shirt; moves on to attributes
    page.click(".taxonomy[data-taxonomy='clothing_type'] .metadata-toggle")
    assert page.evaluate("document.activeElement.className") == "metadata-key"
    page.keyboard.type("count")
    page.keyboard.press("Tab")
    page.keyboard.type("42")
    for key, value in [("checked", "true"), ("reviewer", "null"), ("note", "faint"), ("note", "again")]:
        page.click(".taxonomy[data-taxonomy='clothing_type'] .add-metadata")
        page.keyboard.type(key)
        page.keyboard.press("Tab")
        page.keyboard.type(value)
    error = ".taxonomy[data-taxonomy='clothing_type'] .metadata-error"
    assert page.text_content(error) == "“note” is given twice (rows 4 and 5): keep one."

    page.keyboard.press("Escape")  # back to the labels
    page.keyboard.press("Enter")
    assert page.text_content("#message") == "The metadata of “clothing_type”: “note” is given twice (rows 4 and 5): keep one."
    assert not CategoryAnnotation.objects.filter(status="finished").exists()
    assert editor_rows(page, "clothing_type").nth(4).evaluate("(row) => row.contains(document.activeElement)")

    editor_rows(page, "clothing_type").nth(4).locator(".remove-metadata").click()
    assert page.text_content(error) == ""
    page.keyboard.press("Escape")
    page.keyboard.press("Enter")
    wait_shown(page, "image_2")
    annotation = CategoryAnnotation.objects.get(item__reference_id="image_1", taxonomy__taxonomy_name="clothing_type")
    assert annotation.metadata == {"count": 42, "checked": True, "reviewer": None, "note": "faint"}
    assert page.errors == []


def test_the_metadata_editor_shows_stored_values_so_they_keep_their_type(new_page, dataset, labeler, three_items):
    page = new_page(labeler)
    open_label_page(page, dataset)
    wait_shown(page, "image_1")
    page.keyboard.press("Shift+M")  # clothing_type's editor
    page.keyboard.type("code")
    page.keyboard.press("Tab")
    page.keyboard.type('"42"')  # the text 42, not the number
    page.keyboard.press("Escape")
    page.keyboard.press("h")
    page.goto("/")
    wait_until(lambda: stored(dataset).get(("image_1", "clothing_type"), [None])[0] == ["shirt"])
    assert CategoryAnnotation.objects.get(item__reference_id="image_1").metadata == {"code": "42"}

    open_label_page(page, dataset)
    wait_shown(page, "image_1")
    assert editor_rows(page, "clothing_type").locator(".metadata-value").input_value() == '"42"'
    page.keyboard.press("Enter")
    wait_shown(page, "image_2")
    assert CategoryAnnotation.objects.get(item__reference_id="image_1").metadata == {"code": "42"}
    assert page.errors == []
