"""The authentication backend: Django's ModelBackend behind the sign-in throttle.

Every sign-in goes through `authenticate()`, whichever page it comes from (/accounts/login/,
/admin/login/, /api/auth/login/), so this is where the throttle is enforced. The forms in
accounts/forms.py only turn a refusal into a message that says why.
"""

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import PermissionDenied

from accounts.services import login_attempt_start, login_attempt_succeeded, login_throttle_keys


class ThrottledModelBackend(ModelBackend):
    def authenticate(self, request, username=None, password=None, **kwargs):
        if username is None:
            username = kwargs.get(get_user_model().USERNAME_FIELD)
        if username is None or password is None:
            return None
        # Counted before the (slow) password check, so that guesses arriving while others are still
        # being checked find the lock the last allowed one set (see login_attempt_start).
        attempt = login_attempt_start(keys=login_throttle_keys(username=username, request=request))
        if attempt is None:
            # Refused without checking the password: a locked account tells a guesser nothing, and
            # authenticate() stops at PermissionDenied instead of asking another backend.
            raise PermissionDenied("Too many failed sign-ins.")
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is not None:
            login_attempt_succeeded(attempt=attempt)
        return user
