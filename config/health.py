"""`/health/`: is this web process able to serve? For load balancers, systemd checks and monitors.

No authentication and no session (nothing here reads one, so no cookie is set); one `SELECT 1` and,
when a broker is configured, one Redis PING with a short timeout. `HealthCheckMiddleware`, first in
MIDDLEWARE, answers GET and HEAD before anything reads the Host header, so that a load balancer
probing by address (`Host: 10.0.0.5`) is not refused by ALLOWED_HOSTS. 200 with
`{"database": "ok", "broker": "ok" | "not configured"}`, or 503 with "failed" for what failed; the
reason goes to the log, not to an anonymous caller.
"""

import logging
from functools import lru_cache

import redis
from django.conf import settings
from django.db import DatabaseError, connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

logger = logging.getLogger(__name__)

# Short enough that a probe (usually with a 5-10 s timeout) hears "failed" rather than nothing.
BROKER_TIMEOUT_SECONDS = 2


@lru_cache(maxsize=4)
def broker_client(url: str) -> redis.Redis:
    """One client (and connection pool) per broker URL per process, so a probe reuses a connection."""
    return redis.Redis.from_url(url, socket_connect_timeout=BROKER_TIMEOUT_SECONDS, socket_timeout=BROKER_TIMEOUT_SECONDS)


def database_status() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError:
        logger.exception("Health check: the database does not answer")
        return "failed"
    return "ok"


def broker_status() -> str:
    if settings.CELERY_TASK_ALWAYS_EAGER or not settings.CELERY_BROKER_URL:
        return "not configured"
    try:
        broker_client(settings.CELERY_BROKER_URL).ping()
    except redis.RedisError:
        logger.exception("Health check: the broker does not answer")
        return "failed"
    return "ok"


@never_cache
@require_safe
def health(request: HttpRequest) -> JsonResponse:
    statuses = {"database": database_status(), "broker": broker_status()}
    healthy = "failed" not in statuses.values()
    return JsonResponse(statuses, status=200 if healthy else 503)


class HealthCheckMiddleware:
    """Serve GET and HEAD `/health/` before the rest of the stack: SecurityMiddleware and
    CommonMiddleware call `request.get_host()`, which refuses (400) a host outside ALLOWED_HOSTS, and
    a probe by address sends one. The answer names no host, so nothing is lost by skipping that check.
    Other methods and paths go on as usual (the URL pattern answers 405 to a POST)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest):
        if request.path_info == "/health/" and request.method in ("GET", "HEAD"):
            return health(request)
        return self.get_response(request)
