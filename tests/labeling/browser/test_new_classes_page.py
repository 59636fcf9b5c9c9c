"""The labeling page for an item sent back for the classes added since: only those classes show, and
the answer adds them to the first one."""

import pytest

from labeling.services.new_classes import taxonomy_ask_new_classes
from taxonomies.services import taxonomy_add_labels
from tests.labeling.browser.test_label_page import (  # noqa: F401 (taxonomies: the page tests' fixture)
    open_label_page, stored, taxonomies, upload_items, wait_all_done, wait_for, wait_shown,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_item_sent_back_shows_only_the_new_classes_and_keeps_its_first_answers(new_page, dataset, labeler, taxonomies):
    clothing, attributes = taxonomies
    upload_items(dataset, 1)
    page = new_page(labeler)
    open_label_page(page, dataset)
    wait_shown(page, "image_1")
    page.keyboard.press("h")  # shirt
    page.keyboard.press("l")  # logo
    page.keyboard.press("Enter")
    wait_all_done(page)
    taxonomy_add_labels(taxonomy=attributes, labels=[{"name": "hood", "hotkey": "o"}])
    taxonomy_ask_new_classes(taxonomy=attributes)

    page.reload()
    wait_shown(page, "image_1")

    sections = page.locator(".taxonomy")
    assert sections.evaluate_all("(all) => all.map((s) => s.dataset.taxonomy)") == ["attributes"]
    assert page.locator(".taxonomy .label-name").all_text_contents() == ["hood", "None of these"]
    assert page.text_content(".taxonomy .taxonomy-kind") == "new classes only"
    page.keyboard.press("o")  # hood
    page.keyboard.press("Enter")
    wait_all_done(page)

    assert stored(dataset) == {
        ("image_1", "clothing_type"): (["shirt"], "finished", 1, "bob"),
        ("image_1", "attributes"): (["logo", "hood"], "finished", 2, "bob"),
    }
    page.reload()
    wait_for(page, "() => document.getElementById('label-page').dataset.state === 'done'")
    assert page.errors == []
