"""Scoping the Django admin to the datasets a staff user manages.

A superuser sees everything. Any other staff user (who also needs the usual model permissions)
sees and changes only the rows of datasets where they are an admin
(`selectors.dataset_list_administered_by`): the change lists, the change, delete and history pages
(another dataset's row is a 404, as if it did not exist), the sidebar filters (which would
otherwise list every dataset's name) and the choices of every foreign key to a dataset, or to a
row that belongs to one.
"""

from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.http import Http404

from labeling import selectors
from labeling.models import CategoryAnnotation, Dataset, DatasetMember, Item, Scene
from taxonomies.models import Label, Taxonomy

# How each model reaches its dataset.
DATASET_PATHS = {
    Dataset: "pk",
    DatasetMember: "dataset",
    Item: "dataset",
    Scene: "dataset",
    CategoryAnnotation: "dataset",
    Taxonomy: "dataset",
    Label: "taxonomy__dataset",
}


def scoped(queryset, user):
    """The rows of `queryset` (a model of DATASET_PATHS) in datasets `user` manages."""
    if user.is_superuser:
        return queryset
    path = DATASET_PATHS[queryset.model]
    return queryset.filter(**{f"{path}__in": selectors.dataset_list_administered_by(user=user).values("pk")})


class DatasetScopedAdmin:
    """Mixin for a ModelAdmin of a model in DATASET_PATHS (put it before admin.ModelAdmin)."""

    def get_queryset(self, request):
        return scoped(super().get_queryset(request), request.user)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.related_model in DATASET_PATHS and "queryset" not in kwargs:
            kwargs["queryset"] = scoped(db_field.related_model._default_manager.all(), request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_list_filter(self, request):
        """A filter on a dataset (or a taxonomy, ...) lists only those of the rows shown."""
        filters = super().get_list_filter(request)
        if request.user.is_superuser:
            return filters
        return [
            (name, admin.RelatedOnlyFieldListFilter) if isinstance(name, str) and self._is_scoped_relation(name) else name
            for name in filters
        ]

    def _is_scoped_relation(self, name: str) -> bool:
        field = self.model._meta.get_field(name) if "__" not in name else None
        return field is not None and field.is_relation and field.related_model in DATASET_PATHS

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        self._refuse_outside_scope(request, object_id)
        return super().changeform_view(request, object_id, form_url, extra_context)

    def delete_view(self, request, object_id, extra_context=None):
        self._refuse_outside_scope(request, object_id)
        return super().delete_view(request, object_id, extra_context)

    def history_view(self, request, object_id, extra_context=None):
        self._refuse_outside_scope(request, object_id)
        return super().history_view(request, object_id, extra_context)

    def _refuse_outside_scope(self, request, object_id) -> None:
        # The admin would redirect with "doesn't exist"; a 404 says the same and nothing more.
        if object_id is not None and not request.user.is_superuser and self.get_object(request, unquote(object_id)) is None:
            raise Http404("No such object in the datasets you manage.")
