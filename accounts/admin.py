from django.contrib import admin

from accounts.forms import ThrottledAdminAuthenticationForm
from accounts.models import LoginThrottle

# The admin's own sign-in page says why a throttled sign-in is refused (the backend refuses it either way).
admin.site.login_form = ThrottledAdminAuthenticationForm


@admin.register(LoginThrottle)
class LoginThrottleAdmin(admin.ModelAdmin):
    """Read-only, except that a locked-out user can be let in again by deleting the row."""

    list_display = ["scope", "key", "failures", "window_started_at", "locked_until"]
    list_filter = ["scope"]
    search_fields = ["key"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
