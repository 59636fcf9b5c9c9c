"""Field-level checks shared by the models, the services and (later) the API serializers."""

import json
import math

from django.core.exceptions import ValidationError

from labeling.errors import RowError
from taxonomies.text import unstorable_paths, validate_name_text

# They cannot round-trip through URLs: clients and servers resolve them as path segments.
DOT_SEGMENTS = frozenset({".", ".."})


def validate_metadata(value) -> None:
    """Metadata is a JSON object with string keys and finite numbers.

    Nucleus refuses NaN and Infinity (the SDK raises before sending), so they are refused here, when
    the annotation or item is stored, rather than discovered by the sync. So is text that cannot
    be stored the same way on every database (taxonomies.text), in keys and values at any depth.
    """
    if not isinstance(value, dict):
        raise ValidationError("metadata must be a JSON object of key-value pairs.", code="invalid")
    try:
        dumped = json.dumps(value, allow_nan=False, ensure_ascii=False)
    except ValueError:
        raise ValidationError(
            f"metadata contains NaN or Infinity (at {_first_non_finite_path(value)}); use null or a finite number.",
            code="non_finite",
        ) from None
    except TypeError as error:
        raise ValidationError(f"metadata must be JSON: {error}.", code="invalid") from None
    for path, problem in unstorable_paths(value, "metadata", dumped=dumped):
        raise ValidationError(f"{path}: {problem}", code="unstorable_text")


def _first_non_finite_path(value, path: str = "metadata") -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return path
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in children:
        found = _first_non_finite_path(child, f"{path}[{key!r}]")
        if found:
            return found
    return ""


def validate_reference_id(value: str) -> None:
    """A reference_id is a name (taxonomies.text) and not "." or ".."."""
    validate_name_text(value)
    if value in DOT_SEGMENTS:
        raise ValidationError("reference_id cannot be '.' or '..': they cannot round-trip through URLs.", code="dot_segment")


def unstorable_text_errors(body) -> list[RowError]:
    """A RowError for every key or string of a request body or a file's rows that holds text that
    cannot be stored (taxonomies.text). A list's elements are rows, named by their index and the
    path inside them (row 3, `metadata.color`); so are the `annotations` of submit/ and draft/, as
    their other errors name them; anything else is named by its path (`labels[2]`)."""
    if next(unstorable_paths(body), None) is None:
        return []
    if isinstance(body, list):
        return [
            RowError(index=index, field=path, message=problem)
            for index, row in enumerate(body)
            for path, problem in unstorable_paths(row)
        ]
    if isinstance(body, dict) and isinstance(body.get("annotations"), list):
        rest = {key: value for key, value in body.items() if key != "annotations"}
        return [*unstorable_text_errors(body["annotations"]), *unstorable_text_errors(rest)]
    return [RowError(index=None, field=path, message=problem) for path, problem in unstorable_paths(body)]
