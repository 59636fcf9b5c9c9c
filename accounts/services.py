"""Sign-in throttling: after LOGIN_FAILURE_LIMIT failed sign-ins of one username (or
LOGIN_IP_FAILURE_LIMIT from one client address) within LOGIN_FAILURE_WINDOW_SECONDS, every sign-in
of that username (from that address) is refused for LOGIN_LOCKOUT_SECONDS, even with the right
password. Attempts are counted before their password is checked, so that guesses in flight cannot
go past the limit, and a successful one is taken back. A successful sign-in also clears its
username's count; an address's count only runs out, so that one valid account cannot be used to
reset the count of an address guessing at others.
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


@dataclass(frozen=True)
class LoginAttempt:
    """A sign-in attempt counted by `login_attempt_start`, to take back if it succeeds."""

    keys: list[ThrottleKey]
    started_at: datetime
    lock_end: datetime  # the lock this attempt set on a key it brought to its limit


def login_attempt_start(*, keys: list[ThrottleKey]) -> LoginAttempt | None:
    """Count a sign-in attempt against each key *before* its password is checked, locking the keys
    it brings to their limit; None, with nothing counted, when one of them is locked already.

    Counting first is what makes the limit exact: the password hash is slow, and guesses still
    hashing when the lock was set used to be checked anyway (up to one per web worker). Now the
    attempt that reaches the limit sets the lock before its own check, so every later one is
    refused. One UPDATE per key does the count-and-lock, so concurrent attempts (in several
    processes) never lose a count: a window that is over starts again at 1, and the lock is set
    from the count the statement computes, not from one read before it. A successful attempt is
    taken back by `login_attempt_succeeded`; a failed one stays counted."""
    now = timezone.now()
    attempt = LoginAttempt(keys=keys, started_at=now, lock_end=now + timedelta(seconds=settings.LOGIN_LOCKOUT_SECONDS))
    try:
        # Together: the username's count is not kept when the address refuses the attempt.
        with transaction.atomic():
            for key in keys:
                if not _attempt_count(key=key, attempt=attempt):
                    raise _Locked
    except _Locked:
        return None
    return attempt


def login_attempt_succeeded(*, attempt: LoginAttempt) -> None:
    """A successful sign-in clears its username's count (not its address's: see the module) and
    takes itself back from the address's count, with the lock if this attempt set it."""
    for key in attempt.keys:
        row = LoginThrottle.objects.filter(scope=key.scope, key=key.key)
        if key.scope == LoginThrottle.Scope.USERNAME:
            row.delete()
            continue
        # Not when another attempt has started a new window since: this one is no longer in it.
        row.filter(window_started_at__lte=attempt.started_at).update(
            failures=Case(When(failures__gt=0, then=F("failures") - 1), default=Value(0), output_field=PositiveIntegerField()),
            locked_until=Case(When(locked_until=attempt.lock_end, then=Value(None)), default=F("locked_until"), output_field=DateTimeField()),
        )


class _Locked(Exception):
    """A key refused the attempt: rolls back the counts of the keys before it."""


def _attempt_count(*, key: ThrottleKey, attempt: LoginAttempt) -> bool:
    """Count the attempt on the key's row (made if absent) unless the key is locked; whether it counted."""
    window_start = attempt.started_at - timedelta(seconds=settings.LOGIN_FAILURE_WINDOW_SECONDS)
    expired = Q(window_started_at__lt=window_start)
    lock_end = Value(attempt.lock_end, output_field=DateTimeField())
    if key.limit <= 1:
        locks = lock_end
    else:
        # The count before this attempt reaches limit - 1 (and still counts: the window is not over).
        locks = Case(
            When(~expired & Q(failures__gte=key.limit - 1), then=lock_end),
            default=F("locked_until"), output_field=DateTimeField(),
        )
    # A locked key refuses without counting: its count stays at the limit while the lock lasts.
    unlocked = LoginThrottle.objects.filter(scope=key.scope, key=key.key).exclude(locked_until__gt=attempt.started_at)
    changes = {
        "failures": Case(When(expired, then=Value(1)), default=F("failures") + 1, output_field=PositiveIntegerField()),
        "window_started_at": Case(When(expired, then=Value(attempt.started_at)), default=F("window_started_at"), output_field=DateTimeField()),
        "locked_until": locks,
    }
    if unlocked.update(**changes):
        return True
    try:
        with transaction.atomic():
            LoginThrottle.objects.create(
                scope=key.scope, key=key.key, failures=1, window_started_at=attempt.started_at,
                locked_until=attempt.lock_end if key.limit <= 1 else None,
            )
        return True
    except IntegrityError:
        # The row exists: locked, or made by another process since the UPDATE (count on it then).
        return bool(unlocked.update(**changes))


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
