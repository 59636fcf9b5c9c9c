"""One exception handler: every bad input becomes a 400 (a write the ownership rule refuses: a 409
or a 403) with `{"errors": [{"index"?, "field", "message"}]}`, whatever raised it; DRF's own
refusals (401, 403, 404, 405, 413, 415, 429, a body that is not JSON) keep their status and get the
same shape."""

from django.apps import apps
from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError
from django.http import JsonResponse
from django.views.defaults import page_not_found
from rest_framework import status
from rest_framework.exceptions import ValidationError as DrfValidationError
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from labeling.errors import BatchInvalid, RowError, row_errors_from
from labeling.services.idempotency import RequestInProgress
from labeling.services.ownership import WriteRefused


def exception_handler(exc, context):
    if isinstance(exc, RequestDataTooBig):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        message = f"The body is larger than {limit} bytes; send the rows as a file (multipart `file`) or in smaller batches."
        return _errors([RowError(index=None, field="", message=message)], status_code=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
    if isinstance(exc, (TooManyFieldsSent, TooManyFilesSent)):
        return _errors([RowError(index=None, field="", message=str(exc))])
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
    if isinstance(exc, WriteRefused):
        return _errors(exc.rows, status_code=exc.status)
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(response.data, dict) and set(response.data) == {"detail"}:
        # The same Response, so its headers (WWW-Authenticate, Retry-After) stay.
        response.data = {"errors": [RowError(index=None, field="", message=str(response.data["detail"])).as_dict()]}
    return response


def not_found(request, exception):
    """Django's 404 (the root URLconf's handler404): a URL under /api/ that names no endpoint answers
    in the API's shape, any other the site's page."""
    if request.path_info.startswith("/api/"):
        message = "No endpoint has this URL; see /api/docs/."
        return JsonResponse({"errors": [RowError(index=None, field="", message=message).as_dict()]}, status=status.HTTP_404_NOT_FOUND)
    return page_not_found(request, exception)


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
