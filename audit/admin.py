from django.conf import settings
from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.http import Http404
from django.utils.module_loading import import_string

from audit.models import AuditEvent


def datasets_managed_by(user):
    """The datasets whose events a staff user may read: settings.ADMIN_DATASET_SCOPE decides (this
    app does not import the app that owns datasets and their admins)."""
    return import_string(settings.ADMIN_DATASET_SCOPE)(user=user)


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Read-only: the log is written by the services, never edited. A staff user who is not a
    superuser sees the events of the datasets they manage only."""

    list_display = ["created_at", "dataset", "actor_username", "action", "taxonomy_name", "reference_id"]
    # Only the datasets of the events shown: a plain filter would list every dataset's name.
    list_filter = ["action", ("dataset", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["actor_username", "reference_id", "taxonomy_name"]
    list_select_related = ["dataset"]
    show_full_result_count = False

    def get_queryset(self, request):
        events = super().get_queryset(request)
        if request.user.is_superuser:
            return events
        return events.filter(dataset__in=datasets_managed_by(request.user).values("pk"))

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        self._refuse_outside_scope(request, object_id)
        return super().changeform_view(request, object_id, form_url, extra_context)

    def history_view(self, request, object_id, extra_context=None):
        self._refuse_outside_scope(request, object_id)
        return super().history_view(request, object_id, extra_context)

    def _refuse_outside_scope(self, request, object_id) -> None:
        # Another dataset's event is a 404, as if it did not exist (the admin would redirect).
        if object_id is not None and self.get_object(request, unquote(object_id)) is None:
            raise Http404("No such event in the datasets you manage.")

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in AuditEvent._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
