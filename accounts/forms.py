"""Sign-in forms that say when a sign-in was refused because of the throttle (accounts/backends.py),
instead of Django's "enter a correct username and password"."""

from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.utils import timezone

from accounts.services import login_locked_until, login_throttle_keys

LOCKED_MESSAGE = (
    "Too many failed sign-ins for this account or from this address. Try again in %(minutes)s minute(s)."
)


class ThrottledFormMixin:
    def clean(self):
        try:
            return super().clean()
        except forms.ValidationError as error:
            username = self.cleaned_data.get("username")
            if error.code != "invalid_login" or not username:
                raise
            # Only read on a failure: the lock may have been set by this very attempt.
            until = login_locked_until(keys=login_throttle_keys(username=username, request=self.request))
            if until is None:
                raise
            minutes = max(1, -(-int((until - timezone.now()).total_seconds()) // 60))
            raise forms.ValidationError(LOCKED_MESSAGE, code="locked", params={"minutes": minutes}) from None


class ThrottledAuthenticationForm(ThrottledFormMixin, AuthenticationForm):
    pass


class ThrottledAdminAuthenticationForm(ThrottledFormMixin, AdminAuthenticationForm):
    pass
