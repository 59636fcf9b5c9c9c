"""One exception handler: every bad input becomes a 400 (409 for a task another labeler holds) with
`{"errors": [{"index"?, "field", "message"}]}`, whatever raised it."""

from django.apps import apps
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError
from rest_framework import status
from rest_framework.exceptions import ValidationError as DrfValidationError
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from labeling.errors import BatchInvalid, RowError, row_errors_from
from labeling.services.idempotency import RequestInProgress
from labeling.services.queue import TaskHeldByAnotherLabeler


def exception_handler(exc, context):
    if isinstance(exc, BatchInvalid):
        return _errors(exc.rows)
    if isinstance(exc, DjangoValidationError):
        return _errors(row_errors_from(exc, index=None, default_field=""))
    if isinstance(exc, DrfValidationError):
        return _errors(_flatten(exc.detail, field=""))
    if isinstance(exc, IntegrityError):
        # Validation runs before every write, so this is a race the database settled; say which rule.
        return _errors([RowError(index=None, field="", message=_constraint_message(str(exc)))])
    if isinstance(exc, RequestInProgress):
        return _errors(
            [RowError(index=None, field="Idempotency-Key", message="A request with this key is still running.")],
            status_code=status.HTTP_409_CONFLICT,
        )
    if isinstance(exc, TaskHeldByAnotherLabeler):
        return _errors(
            [RowError(index=None, field="reference_id", message="Another labeler holds this task now.")],
            status_code=status.HTTP_409_CONFLICT,
        )
    return drf_exception_handler(exc, context)


def _errors(rows: list[RowError], status_code: int = status.HTTP_400_BAD_REQUEST) -> Response:
    return Response({"errors": [row.as_dict() for row in rows]}, status=status_code)


def _flatten(detail, field: str) -> list[RowError]:
    """DRF's nested error dicts and lists as flat `field` paths such as `labels[2]`."""
    if isinstance(detail, dict):
        errors = []
        for key, value in detail.items():
            if key == "non_field_errors":
                path = field
            elif isinstance(key, int):
                # ListField reports a bad element in a dict keyed by its position.
                path = f"{field}[{key}]"
            else:
                path = f"{field}.{key}" if field else key
            errors.extend(_flatten(value, field=path))
        return errors
    if isinstance(detail, list):
        if all(isinstance(value, str) for value in detail):
            return [RowError(index=None, field=field, message=str(value)) for value in detail]
        return [error for position, value in enumerate(detail) for error in _flatten(value, field=f"{field}[{position}]")]
    return [RowError(index=None, field=field, message=str(detail))]


def _constraint_message(database_message: str) -> str:
    for model in apps.get_models():
        for constraint in model._meta.constraints:
            if constraint.name in database_message:
                return constraint.get_violation_error_message()
    return "This change conflicts with data stored meanwhile; reload and try again."
