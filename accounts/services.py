"""Sign-in throttling: after LOGIN_FAILURE_LIMIT failed sign-ins of one username (or
LOGIN_IP_FAILURE_LIMIT from one client address) within LOGIN_FAILURE_WINDOW_SECONDS, every sign-in
of that username (from that address) is refused for LOGIN_LOCKOUT_SECONDS, even with the right
password. A successful sign-in clears its username's count; an address's count only runs out, so
that one valid account cannot be used to reset the count of an address guessing at others.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Case, DateTimeField, F, PositiveIntegerField, Q, Value, When
from django.http import HttpRequest
from django.utils import timezone

from accounts.models import LoginThrottle


@dataclass(frozen=True)
class ThrottleKey:
    scope: str
    key: str
    limit: int


def login_throttle_keys(*, username: str, request: HttpRequest | None) -> list[ThrottleKey]:
    """The counters a sign-in of `username` from `request`'s client counts against."""
    # Lower-cased: "Alice" fails for the account "alice" and counts against it, not beside it.
    keys = [ThrottleKey(LoginThrottle.Scope.USERNAME, username.strip().lower()[:150], settings.LOGIN_FAILURE_LIMIT)]
    address = client_ip(request)
    if address:
        keys.append(ThrottleKey(LoginThrottle.Scope.IP, address, settings.LOGIN_IP_FAILURE_LIMIT))
    return keys


def client_ip(request: HttpRequest | None) -> str:
    """REMOTE_ADDR, or behind a proxy the last address of LOGIN_CLIENT_IP_HEADER: the one the
    proxy itself appended (the ones before it are whatever the client sent)."""
    if request is None:
        return ""
    header = settings.LOGIN_CLIENT_IP_HEADER
    if header:
        forwarded = request.META.get("HTTP_" + header.upper().replace("-", "_"), "")
        if forwarded.strip():
            return forwarded.split(",")[-1].strip()[:150]
    return request.META.get("REMOTE_ADDR", "")[:150]


def login_locked_until(*, keys: list[ThrottleKey]) -> datetime | None:
    """When the latest lock among `keys` ends, or None when none is locked now (one query)."""
    now = timezone.now()
    locks = LoginThrottle.objects.filter(
        _keys_filter(keys), locked_until__gt=now
    ).values_list("locked_until", flat=True)
    return max(locks, default=None)


def login_failure_record(*, keys: list[ThrottleKey]) -> None:
    """Count a failed sign-in against each key, locking those that reach their limit.

    One UPDATE per key does the whole count-and-lock, so concurrent failures (in several
    processes) never lose a count: a window that is over starts again at 1, and the lock is set
    from the count the statement computes, not from one read before it."""
    now = timezone.now()
    window_start = now - timedelta(seconds=settings.LOGIN_FAILURE_WINDOW_SECONDS)
    lock_end = now + timedelta(seconds=settings.LOGIN_LOCKOUT_SECONDS)
    for key in keys:
        expired = Q(window_started_at__lt=window_start)
        if key.limit <= 1:
            locks = Value(lock_end, output_field=DateTimeField())
        else:
            # The count before this failure reaches limit - 1 (and still counts: the window is not over).
            locks = Case(
                When(~expired & Q(failures__gte=key.limit - 1), then=Value(lock_end)),
                default=F("locked_until"), output_field=DateTimeField(),
            )
        updated = LoginThrottle.objects.filter(scope=key.scope, key=key.key).update(
            failures=Case(When(expired, then=Value(1)), default=F("failures") + 1, output_field=PositiveIntegerField()),
            window_started_at=Case(When(expired, then=Value(now)), default=F("window_started_at"), output_field=DateTimeField()),
            locked_until=locks,
        )
        if updated:
            continue
        try:
            with transaction.atomic():
                LoginThrottle.objects.create(
                    scope=key.scope, key=key.key, failures=1, window_started_at=now,
                    locked_until=lock_end if key.limit <= 1 else None,
                )
        except IntegrityError:
            # Another process made the row first: count this failure on it.
            login_failure_record(keys=[key])


def login_success_record(*, username: str) -> None:
    """A successful sign-in clears the username's failures (not its address's: see the module)."""
    LoginThrottle.objects.filter(scope=LoginThrottle.Scope.USERNAME, key=username.strip().lower()[:150]).delete()


def login_throttles_purge() -> int:
    """Delete rows whose window and lock are both over; they would count as a fresh start anyway."""
    now = timezone.now()
    window_start = now - timedelta(seconds=settings.LOGIN_FAILURE_WINDOW_SECONDS)
    deleted, _ = LoginThrottle.objects.filter(
        Q(locked_until__isnull=True) | Q(locked_until__lte=now), window_started_at__lt=window_start
    ).delete()
    return deleted


def _keys_filter(keys: list[ThrottleKey]) -> Q:
    condition = Q(pk__in=[])
    for key in keys:
        condition |= Q(scope=key.scope, key=key.key)
    return condition
