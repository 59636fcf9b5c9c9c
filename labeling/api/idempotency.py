"""The `@idempotent` decorator for POST handlers that create rows."""

import functools

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from labeling.services.idempotency import (
    idempotent_request_claim,
    idempotent_request_complete,
    idempotent_request_release,
)


def idempotent(post):
    """With an `Idempotency-Key` header, the first successful answer is stored and replayed to
    retries with the same key; a failed request frees the key again."""

    @functools.wraps(post)
    def handle(view, request: Request, *args, **kwargs) -> Response:
        key = request.headers.get("Idempotency-Key")
        if not key:
            return post(view, request, *args, **kwargs)
        claim = idempotent_request_claim(user=request.user, key=key, path=request.path)
        if claim.replay:
            return Response(claim.record.body, status=claim.record.status_code, headers={"Idempotent-Replayed": "true"})
        try:
            response = post(view, request, *args, **kwargs)
        except BaseException:
            idempotent_request_release(claim=claim)
            raise
        if status.is_success(response.status_code):
            idempotent_request_complete(claim=claim, status_code=response.status_code, body=response.data)
        else:
            idempotent_request_release(claim=claim)
        return response

    header = OpenApiParameter(
        "Idempotency-Key", str, OpenApiParameter.HEADER, description="Send the same key on a retry to get the first answer again."
    )
    return extend_schema(parameters=[header])(handle)
