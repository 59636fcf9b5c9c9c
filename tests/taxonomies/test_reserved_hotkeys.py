"""The keys the labeling page takes for itself are one list (taxonomies.models.PAGE_KEYS): validation
refuses each of them as a hotkey, and the page reads the same list (its key handling has no key of
its own; tests/labeling/browser/test_label_page_edges.py presses every other key to prove it)."""

import re
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError

from taxonomies.models import PAGE_KEYS, RESERVED_HOTKEYS, Label, validate_hotkey
from tests.factories import TaxonomyFactory

# Pinned by hand: a key dropped from PAGE_KEYS (so that a label could take it) fails here.
PINNED_RESERVED = "0123456789sz?+=-_"
PAGE_JS = Path(__file__).resolve().parents[2] / "static" / "labeling" / "label_page.js"


@pytest.mark.parametrize("key", PINNED_RESERVED)
def test_each_key_of_the_labeling_page_is_refused_as_a_hotkey(key):
    assert key in RESERVED_HOTKEYS
    with pytest.raises(ValidationError, match="reserved by the labeling page"):
        validate_hotkey(key)


@pytest.mark.parametrize("key", sorted(key for keys in PAGE_KEYS.values() for key in keys if len(key) == 1))
@pytest.mark.django_db
def test_no_label_can_take_a_key_the_page_handles(key):
    label = Label(taxonomy=TaxonomyFactory(), name="shirt", hotkey=key)
    with pytest.raises(ValidationError) as error:
        label.full_clean()
    assert error.value.message_dict["hotkey"]


@pytest.mark.parametrize("key", "am;/[.,'")
def test_keys_the_page_leaves_alone_are_allowed(key):
    validate_hotkey(key)


def test_the_page_compares_keys_only_with_the_list_it_is_served():
    """A literal key in the page's key handling would be a key validation does not know about."""
    source = PAGE_JS.read_text()
    handler = source[source.index("function onKeyDown(") :]
    handler = handler[: handler.index("\n}\n")]
    literals = re.findall(r"""(?:key\s*===?\s*|case\s+)(["'`])(.)\1""", handler)
    assert literals == []
    assert "KEY_ACTIONS.get(key)" in handler
