"""Idempotency keys: a POST retried with the same `Idempotency-Key` gets the first answer again."""

from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from labeling.models import IdempotentRequest


class RequestInProgress(Exception):
    """Another request with the same key has not finished yet."""


@dataclass(frozen=True)
class Claim:
    record: IdempotentRequest
    replay: bool


def idempotent_request_claim(*, user, key: str, path: str) -> Claim:
    """Take the key for this request, or return the stored answer of the request that took it.

    The insert is the claim: the unique constraint lets exactly one of two concurrent requests
    with the same key through."""
    if len(key) > 200:
        raise ValidationError({"Idempotency-Key": "At most 200 characters."})
    try:
        with transaction.atomic():
            return Claim(record=IdempotentRequest.objects.create(user=user, key=key, path=path), replay=False)
    except IntegrityError:
        record = IdempotentRequest.objects.get(user=user, key=key)
    if record.path != path:
        raise ValidationError({"Idempotency-Key": "This key was already used for another request."})
    if record.status_code is None:
        raise RequestInProgress()
    return Claim(record=record, replay=True)


def idempotent_request_complete(*, claim: Claim, status_code: int, body) -> None:
    IdempotentRequest.objects.filter(pk=claim.record.pk).update(status_code=status_code, body=body)


def idempotent_request_release(*, claim: Claim) -> None:
    """Free the key of a request that failed, so that the client can fix it and send it again."""
    IdempotentRequest.objects.filter(pk=claim.record.pk, status_code__isnull=True).delete()
