"""The one rule for text (taxonomies.text): its fast path (one json.dumps) never hides a bad string,
and the walk names every one, keys included."""

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from taxonomies.text import shown, unstorable_character, unstorable_paths

BAD = ["\x00", "\ud800", "\udbff", "\udc00", "\udfff"]
# Text that looks like what the fast path searches for without being it.
LOOKALIKES = ["\\u0000", "\\", "\\\\u0000", "\U0001f600"]
texts = st.lists(
    st.one_of(st.sampled_from([*BAD, *LOOKALIKES, "\x01", "\x85"]), st.characters(blacklist_categories=("Cs",))), max_size=4
).map("".join)
documents = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), texts),
    lambda children: st.one_of(st.lists(children, max_size=3), st.dictionaries(texts, children, max_size=3)),
    max_leaves=8,
)


def strings_in(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [*value, *(text for child in value.values() for text in strings_in(child))]
    if isinstance(value, list):
        return [text for child in value for text in strings_in(child)]
    return []


def bad(text: str) -> bool:
    return any(character in BAD or "\ud800" <= character <= "\udfff" for character in text)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(document=documents)
def test_every_bad_string_is_found_once_and_nothing_else(document):
    found = list(unstorable_paths(document, "metadata"))

    assert len(found) == sum(bad(text) for text in strings_in(document))
    assert all(path.startswith("metadata") for path, _ in found)
    json.dumps([path for path, _ in found]).encode("utf-8")  # a path can always be sent back


def test_a_name_may_not_hold_a_control_character_that_other_text_may():
    assert unstorable_character("tab\there") is None
    assert unstorable_character("tab\there", name=True) == "contains the control character U+0009, which a name cannot hold"
    assert unstorable_character("nel\x85", name=True) == "contains the control character U+0085, which a name cannot hold"
    assert unstorable_character("caf\u00e9 \U0001f600", name=True) is None


def test_shown_writes_bad_characters_as_escapes():
    assert shown("a\x00b\ud800\x85") == "a\\u0000b\\ud800\\u0085"
