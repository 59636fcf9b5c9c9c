"""Who is acting: the signed-in user of the request being served, for services whose callers do not
pass one (the taxonomy services are called from the API, the admin and commands alike).

The middleware keeps the request, not its user, because DRF authenticates (a token) after the
middleware has run and sets the user on that same request object.
"""

from contextvars import ContextVar

from django.http import HttpRequest

_request: ContextVar[HttpRequest | None] = ContextVar("audit_request", default=None)


def current_actor():
    """The signed-in user of the current request, or None (a command, a task, an anonymous request)."""
    request = _request.get()
    user = getattr(request, "user", None) if request is not None else None
    return user if user is not None and user.is_authenticated else None


class AuditActorMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        token = _request.set(request)
        try:
            return self.get_response(request)
        finally:
            _request.reset(token)
