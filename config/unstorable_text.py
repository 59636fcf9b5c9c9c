"""The query string, the URL's path parameters and the headers of every request, held to the text
rule (taxonomies.text) before any view runs: a NUL in `?q=`, in `taxonomies/<name>/` or in a token
would otherwise reach PostgreSQL, which refuses it with a 500 (SQLite would look it up).

The API answers a 400 in its `{"errors": [...]}` shape; the pages answer Django's 400 page. Bodies
are the parsers' (labeling/api/parsers.py) and the forms' (Django's fields refuse NUL) to check.
"""

from django.core.exceptions import SuspiciousOperation
from django.http import JsonResponse
from django.views.defaults import bad_request

from labeling.errors import RowError
from taxonomies.text import shown, unstorable_character

API_PREFIX = "/api/"


class UnstorableTextMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        errors = [*_query_errors(request), *_path_errors(view_kwargs), *_header_errors(request)]
        if not errors:
            return None
        if request.path_info.startswith(API_PREFIX):
            return JsonResponse({"errors": [error.as_dict() for error in errors]}, status=400)
        return bad_request(request, SuspiciousOperation("; ".join(str(error) for error in errors)))


def _query_errors(request) -> list[RowError]:
    errors = []
    for key, values in request.GET.lists():
        for text in (key, *values):
            problem = unstorable_character(text)
            if problem:
                errors.append(RowError(index=None, field=shown(key), message=f"This query parameter {problem}."))
                break
    return errors


def _path_errors(view_kwargs: dict) -> list[RowError]:
    return [
        RowError(index=None, field=name, message=f"This part of the URL {problem}.")
        for name, value in view_kwargs.items()
        if isinstance(value, str) and (problem := unstorable_character(value))
    ]


def _header_errors(request) -> list[RowError]:
    """Headers reach the database too: the token, the session cookie, the Idempotency-Key."""
    return [
        RowError(index=None, field=name[5:].replace("_", "-").title(), message=f"This header {problem}.")
        for name, value in request.META.items()
        if name.startswith("HTTP_") and isinstance(value, str) and (problem := unstorable_character(value))
    ]
