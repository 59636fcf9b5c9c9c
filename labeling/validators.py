"""Field-level checks shared by the models, the services and (later) the API serializers."""

import json
import math

from django.core.exceptions import ValidationError


def validate_metadata(value) -> None:
    """Metadata is a JSON object with string keys and finite numbers.

    Nucleus refuses NaN and Infinity (the SDK raises before sending), so they are refused here, when
    the annotation or item is stored, rather than discovered by the sync.
    """
    if not isinstance(value, dict):
        raise ValidationError("metadata must be a JSON object of key-value pairs.", code="invalid")
    try:
        json.dumps(value, allow_nan=False)
    except ValueError:
        raise ValidationError(
            f"metadata contains NaN or Infinity (at {_first_non_finite_path(value)}); use null or a finite number.",
            code="non_finite",
        ) from None
    except TypeError as error:
        raise ValidationError(f"metadata must be JSON: {error}.", code="invalid") from None


def _first_non_finite_path(value, path: str = "metadata") -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return path
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in children:
        found = _first_non_finite_path(child, f"{path}[{key!r}]")
        if found:
            return found
    return ""
