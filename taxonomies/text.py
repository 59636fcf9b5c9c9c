"""Text that cannot be stored the same way everywhere: the one rule every edge checks.

PostgreSQL refuses NUL (U+0000) in text and jsonb; SQLite stores it. A lone surrogate (U+D800 to
U+DFFF, which `json.loads` makes of a "\\ud800" escape) is not text at all: SQLite stores it in JSON
and every later read that encodes it answers 500. So both are refused in every string, and names
(labels, taxonomy names, reference ids, dataset names), which people read, type and put in URLs,
may not hold the other C0 and C1 control characters either. Nothing is ever stripped or normalised:
Nucleus compares strings exactly.

It lives in `taxonomies`, the app every other one may import, so taxonomies never imports labeling.
"""

import json
import re
from collections.abc import Iterator

from django.core.exceptions import ValidationError

# Never in any string.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# Never in a name: the above and the other C0 (U+0001-U+001F, U+007F) and C1 (U+0080-U+009F) controls.
_NOT_IN_NAMES = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def unstorable_character(value: str, *, name: bool = False) -> str | None:
    """Why `value` cannot be stored (its first bad character described), or None when it can."""
    found = (_NOT_IN_NAMES if name else _UNSTORABLE).search(value)
    return None if found is None else describe(found.group())


def describe(character: str) -> str:
    point = f"U+{ord(character):04X}"
    if character == "\x00":
        return f"contains a NUL character ({point}), which cannot be stored"
    if "\ud800" <= character <= "\udfff":
        return f"contains {point}, a lone surrogate (half of a UTF-16 pair), which is not a character"
    return f"contains the control character {point}, which a name cannot hold"


def shown(value: str) -> str:
    """`value` with its bad characters written as \\uXXXX: safe to put in a message or a field path
    (an answer holding a lone surrogate could not even be encoded)."""
    return _NOT_IN_NAMES.sub(lambda found: f"\\u{ord(found.group()):04x}", value)


def validate_storable_text(value: str) -> None:
    problem = unstorable_character(value) if isinstance(value, str) else None
    if problem:
        raise ValidationError(f"This text {problem}.", code="unstorable_text")


def validate_name_text(value: str) -> None:
    """For names: no NUL, no lone surrogate, no other control character."""
    problem = unstorable_character(value, name=True) if isinstance(value, str) else None
    if problem:
        raise ValidationError(f"This name {problem}.", code="unstorable_text")


def unstorable_paths(value, path: str = "", *, dumped: str | None = None) -> Iterator[tuple[str, str]]:
    """(field path, problem) for every key and string at any depth of a JSON-like value that holds
    NUL or a lone surrogate; paths read `metadata.color` and `labels[2]`.

    One C-speed `json.dumps(value, ensure_ascii=False)` (or the caller's, as `dumped`) proves most
    values clean; only a suspect one is walked to name the place."""
    if dumped is None:
        try:
            dumped = json.dumps(value, ensure_ascii=False)
        except (TypeError, ValueError):
            yield from _walk(value, path)  # not plain JSON (a form's values): walk it
            return
    # In `json.dumps(..., ensure_ascii=False)` a NUL is written "\u0000" and a lone surrogate as
    # itself, so an ASCII text (checked at C speed) holds none.
    if "\\u0000" in dumped or (not dumped.isascii() and _SURROGATE.search(dumped)):
        yield from _walk(value, path)


def _walk(value, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        problem = unstorable_character(value)
        if problem:
            yield path, f"This text {problem}."
    elif isinstance(value, dict):
        for key, child in value.items():
            key = key if isinstance(key, str) else str(key)
            child_path = f"{path}.{shown(key)}" if path else shown(key)
            problem = unstorable_character(key)
            if problem:
                yield child_path, f"This key {problem}."
            yield from _walk(child, child_path)
    elif isinstance(value, (list, tuple)):
        for position, child in enumerate(value):
            yield from _walk(child, f"{path}[{position}]")
