"""Django admin for datasets, taxonomies, items, scenes and annotations.

The taxonomy admin lives here rather than in the taxonomies app because it shows how many
annotations use each label and relabels them when a label is removed: that is labeling's knowledge,
and labeling may use taxonomies but not the other way round. Every write goes through a service.
"""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models
from django.db.models import Count, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.forms.models import BaseInlineFormSet
from django.urls import reverse
from django.utils.html import format_html
from django.utils.text import Truncator

from labeling import selectors
from labeling.forms import MetadataFormField, NameFormField
from labeling.admin_members import DatasetMemberInline
from labeling.admin_scoping import DatasetScopedAdmin
from labeling.models import CategoryAnnotation, Dataset, DatasetMember, Item, Scene
from labeling.services.taxonomy_removals import label_remove, taxonomy_remove
from labeling.services.datasets import dataset_member_set
from labeling.services.new_classes import taxonomy_ask_new_classes
from labeling.services.nucleus_items import nucleus_link_check
from labeling.services.sync import sync_blocker, sync_counts, sync_nucleus_link_changed, sync_retry_failed
from taxonomies.models import Label, Taxonomy
from taxonomies.services import (
    LabelSpec,
    label_update,
    taxonomy_add_labels,
    taxonomy_create,
    taxonomy_reorder_labels,
    taxonomy_update,
)

DROP_FROM_ANNOTATIONS = "drop"


def _annotations_in_sync_state(state: str) -> Coalesce:
    """The dataset's annotations in this sync state, as a correlated subquery (a join would multiply
    the item and scene counts)."""
    counted = (
        CategoryAnnotation.objects.filter(dataset=OuterRef("pk"), sync_state=state)
        .order_by()
        .values("dataset")
        .annotate(n=Count("id"))
        .values("n")
    )
    return Coalesce(Subquery(counted), 0)


def _count_column(attribute: str, description: str):
    """A sortable list column showing a count the admin's queryset annotates."""

    @admin.display(description=description, ordering=attribute)
    def column(dataset):
        return getattr(dataset, attribute)

    column.__name__ = attribute
    return column


class DatasetAdminForm(forms.ModelForm):
    # Set by DatasetAdmin.changeform_view, which asks Nucleus before the admin's transaction opens.
    nucleus_link_error = ""

    class Meta:
        model = Dataset
        fields = "__all__"
        # The rule of dataset_create and dataset_update (Dataset.name has no validator: adding one is a migration).
        field_classes = {"name": NameFormField}

    def clean_nucleus_dataset_id(self):
        if self.nucleus_link_error:
            raise forms.ValidationError(self.nucleus_link_error)
        return self.cleaned_data["nucleus_dataset_id"]


@admin.register(Dataset)
class DatasetAdmin(DatasetScopedAdmin, admin.ModelAdmin):
    form = DatasetAdminForm
    list_display = [
        "name", "kind", "nucleus_dataset_id",
        _count_column("item_total", "items"), _count_column("scene_total", "scenes"),
        _count_column("pending_total", "pending sync"), _count_column("failed_total", "failed sync"),
        "created_at",
    ]
    list_filter = ["kind", "nucleus_push_items"]
    search_fields = ["name", "nucleus_dataset_id"]
    readonly_fields = ["nucleus_sync"]
    inlines = [DatasetMemberInline]
    actions = ["retry_failed_sync"]

    def has_add_permission(self, request):
        return selectors.dataset_create_allowed(user=request.user)

    def get_readonly_fields(self, request, obj=None):
        # A dataset's kind is fixed once it exists (its items or scenes, and Nucleus's is_scene, depend on it).
        return [*self.readonly_fields, "kind"] if obj is not None else self.readonly_fields

    def get_queryset(self, request):
        # Subqueries, not joins: two Counts over joined items and scenes would multiply each other.
        return super().get_queryset(request).annotate(
            item_total=Count("items", distinct=True),
            scene_total=Count("scenes", distinct=True),
            pending_total=_annotations_in_sync_state(CategoryAnnotation.SyncState.PENDING),
            failed_total=_annotations_in_sync_state(CategoryAnnotation.SyncState.FAILED),
        )

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        # The admin validates and saves inside one transaction: Nucleus is asked before it opens, but
        # only for a page this user may save (another dataset's page is a 404 first, a refused add a 403).
        self._refuse_outside_scope(request, object_id)
        current = self.get_object(request, unquote(object_id)) if object_id else None
        request.nucleus_link = ("", "")
        if request.method == "POST" and (current is not None or object_id is None):
            if not (self.has_change_permission(request, current) if current else self.has_add_permission(request)):
                raise PermissionDenied
            request.nucleus_link = self._nucleus_link_check(request, current)
        return super().changeform_view(request, object_id, form_url, extra_context)

    def _nucleus_link_check(self, request, current: Dataset | None) -> tuple[str, str]:
        """(error, warning) of checking the submitted nucleus_dataset_id, when it changes."""
        nucleus_dataset_id = request.POST.get("nucleus_dataset_id", "").strip()
        if current is not None and current.nucleus_dataset_id == nucleus_dataset_id:
            return "", ""
        # A dataset's kind is read-only once it exists: what the POST says of it is not what is stored.
        kind = current.kind if current else request.POST.get("kind") or Dataset.Kind.IMAGES
        try:
            return "", nucleus_link_check(nucleus_dataset_id=nucleus_dataset_id, kind=kind)
        except ValidationError as error:
            return " ".join(error.message_dict["nucleus_dataset_id"]), ""

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change, **kwargs)
        error, _ = getattr(request, "nucleus_link", ("", ""))
        return type(form.__name__, (form,), {"nucleus_link_error": error})

    def save_model(self, request, obj, form, change):
        if change:
            # Only what the form changed: `obj` was read before this save, and writing every field
            # would put back a taxonomies_revision that a taxonomy change has bumped since, leaving
            # processes that cached the taxonomies at the newer revision serving them stale.
            obj.save(update_fields=[field.name for field in obj._meta.concrete_fields if field.name in form.changed_data])
        else:
            obj.save()
            # As dataset_create: the creator is its first admin (and so a staff creator sees it).
            dataset_member_set(dataset=obj, user=request.user, role=DatasetMember.Role.ADMIN)
        if change and "nucleus_dataset_id" in form.changed_data:
            resent = sync_nucleus_link_changed(dataset=obj)
            self.message_user(request, f"Linked to another Nucleus dataset: {resent} finished annotation(s) will be sent to it.")
        _, warning = getattr(request, "nucleus_link", ("", ""))
        if warning:
            self.message_user(request, warning, messages.WARNING)

    def save_formset(self, request, form, formset, change):
        if formset.model is DatasetMember:
            # Through the services, which keep the dataset's last admin (labeling/admin_members.py).
            return formset.members_apply(form.instance)
        return super().save_formset(request, form, formset, change)

    @admin.display(description="Nucleus sync")
    def nucleus_sync(self, dataset):
        if dataset.pk is None:
            return "—"
        counts = sync_counts(dataset=dataset)
        blocker = sync_blocker(dataset=dataset)
        return format_html(
            "{} pending, {} synced, {} failed. {} <a href=\"{}\">Open the sync page</a>",
            counts["pending"], counts["synced"], counts["failed"], blocker or "", reverse("labeling:dataset-sync", args=[dataset.pk]),
        )

    @admin.action(description="Retry failed sync of the selected datasets")
    def retry_failed_sync(self, request, queryset):
        retried = sum(sync_retry_failed(dataset=dataset) for dataset in queryset)
        self.message_user(request, f"{retried} failed annotation(s) are pending again; a sync is on its way.")


class LabelInlineForm(forms.ModelForm):
    # Our own removal checkbox rather than the admin's DELETE: the admin refuses deleting anything
    # protected outright, while here a label in use may go once its annotations are relabelled.
    remove = forms.BooleanField(required=False)
    relabel_to = forms.ChoiceField(
        required=False,
        label="If removed, relabel to",
        help_text="Where the annotations that use this label go when you remove it.",
    )

    position = forms.IntegerField(
        required=False, min_value=0, help_text="Sort key; rows left empty go after the others."
    )

    class Meta:
        model = Label
        fields = ["name", "hotkey", "position"]
        field_classes = {"name": NameFormField}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk is None:
            self.initial["position"] = None

    def is_existing(self) -> bool:
        # From the submitted row id, not instance.pk: deleting a label sets its instance.pk to None.
        return self.cleaned_data.get("id") is not None

    def is_removed(self) -> bool:
        return self.is_existing() and bool(self.cleaned_data.get("remove"))


class LabelInlineFormSet(BaseInlineFormSet):
    """Refuses to remove a label that finished annotations use unless the admin chose where they go."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        taxonomy = self.instance
        existing = list(taxonomy.labels.all()) if taxonomy.pk else []
        choices = [("", "—")] + [(str(label.pk), label.name) for label in existing]
        if taxonomy.pk and taxonomy.multi_label:
            choices.append((DROP_FROM_ANNOTATIONS, "Nothing: remove it from the annotations"))
        self.usage = selectors.label_usage_counts(taxonomy=taxonomy) if taxonomy.pk else {}
        for form in self.forms:
            form.fields["relabel_to"].choices = choices

    @property
    def removed_forms(self) -> list[LabelInlineForm]:
        return [form for form in self.forms if form.cleaned_data and form.is_removed()]

    @property
    def kept_forms(self) -> list[LabelInlineForm]:
        """Existing labels that stay, and new rows that were filled in (empty extra rows are skipped)."""
        return [
            form
            for form in self.forms
            if form.cleaned_data and not form.is_removed() and (form.is_existing() or form.has_changed())
        ]

    def clean(self):
        super().clean()
        if any(self.errors):
            return
        removed_ids = {form.instance.pk for form in self.removed_forms}
        hotkey_owner: dict[str, str] = {}
        for form in self.kept_forms:
            hotkey = form.cleaned_data.get("hotkey")
            if hotkey and hotkey in hotkey_owner:
                form.add_error("hotkey", f"“{hotkey_owner[hotkey]}” already uses this hotkey.")
            elif hotkey:
                hotkey_owner[hotkey] = form.cleaned_data.get("name")
        if not self.kept_forms:
            raise forms.ValidationError("A taxonomy needs at least one label.")
        for form in self.removed_forms:
            label = form.instance
            choice = form.cleaned_data.get("relabel_to") or ""
            finished = self.usage.get(label.pk, {}).get("finished", 0)
            if choice and choice != DROP_FROM_ANNOTATIONS and int(choice) in removed_ids:
                form.add_error("relabel_to", "This label is being removed too; relabel to one that stays.")
            elif finished and not choice:
                form.add_error(
                    "relabel_to",
                    f"“{label.name}” is used by {finished} finished annotation(s). Choose a label to relabel "
                    "them to" + (", or remove it from them," if self.instance.multi_label else "") + " to confirm.",
                )
            elif choice and choice != DROP_FROM_ANNOTATIONS and int(choice) == label.pk:
                form.add_error("relabel_to", "Relabel to another label.")


class LabelInline(admin.TabularInline):
    model = Label
    form = LabelInlineForm
    formset = LabelInlineFormSet
    fields = ["name", "hotkey", "position", "usage", "remove", "relabel_to"]
    readonly_fields = ["usage"]
    ordering = ["position", "id"]
    can_delete = False

    def get_extra(self, request, obj=None, **kwargs):
        return 1 if obj else 5

    @admin.display(description="annotations using it")
    def usage(self, label):
        if not label.pk:
            return "—"
        # Inline instances are made per request, so this caches one grouped query per page.
        if not hasattr(self, "_usage"):
            self._usage = selectors.label_usage_counts(taxonomy=label.taxonomy)
        used = self._usage.get(label.pk, {"finished": 0, "draft": 0})
        return f"{used['finished']} finished, {used['draft']} draft"


class TaxonomyAdminForm(forms.ModelForm):
    class Meta:
        model = Taxonomy
        fields = "__all__"
        field_classes = {"taxonomy_name": NameFormField}

    def validate_unique(self):
        super().validate_unique()
        # Once the taxonomy exists its dataset is read-only, so the form leaves the dataset out of its
        # checks and with it the constraint "one taxonomy_name per dataset": a rename to a taken name
        # would fail in the service instead of showing here. The instance has the form's values by now.
        if self.instance.pk and "taxonomy_name" in self.changed_data and not self.has_error("taxonomy_name"):
            others = {field.name for field in Taxonomy._meta.fields} - {"dataset", "taxonomy_name"}
            try:
                self.instance.validate_constraints(exclude=others)
            except ValidationError as error:
                self._update_errors(error)


@admin.register(Taxonomy)
class TaxonomyAdmin(DatasetScopedAdmin, admin.ModelAdmin):
    form = TaxonomyAdminForm
    list_display = ["taxonomy_name", "dataset", "multi_label", "applies_to", "required", "label_count", "nucleus_status"]
    list_filter = ["dataset", "multi_label", "applies_to"]
    search_fields = ["taxonomy_name", "labels__name"]
    readonly_fields = ["nucleus_status"]
    inlines = [LabelInline]
    actions = ["ask_new_classes"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("dataset").prefetch_related("labels")

    def get_readonly_fields(self, request, obj=None):
        # multi_label decides how every annotation is stored and sent; it is fixed once created.
        return ["dataset", "multi_label", "nucleus_status"] if obj else ["nucleus_status"]

    def get_exclude(self, request, obj=None):
        # A new taxonomy goes after the dataset's others (taxonomy_create); it can be moved once it exists.
        return None if obj else ["position"]

    @admin.display(description="labels")
    def label_count(self, taxonomy):
        return len(taxonomy.labels.all())

    @admin.display(description="on Nucleus")
    def nucleus_status(self, taxonomy):
        if taxonomy.pk is None or taxonomy.nucleus_labels is None:
            return "Not created on Nucleus yet"
        renamed_from = taxonomy.nucleus_renamed_from()
        if renamed_from:
            return (
                f"Must be rebuilt on Nucleus (renamed from {renamed_from}): the next sync deletes {renamed_from} "
                "there, creates this name and re-uploads every finished annotation."
            )
        removed = taxonomy.nucleus_labels_removed()
        if removed:
            return (
                f"Must be rebuilt on Nucleus (labels removed or renamed: {', '.join(removed)}): the next sync "
                "deletes the taxonomy there, re-creates it and re-uploads every finished annotation."
            )
        added = taxonomy.nucleus_labels_added()
        if added:
            return f"Labels to add on the next sync: {', '.join(added)}"
        return "In sync"

    def save_model(self, request, obj, form, change):
        # Through the services, which log the change and bump the dataset's taxonomies_revision. A new
        # taxonomy is created in save_formset instead: taxonomy_create needs its labels, the inline rows.
        if change and form.has_changed():
            taxonomy_update(
                # As stored, so that the service logs the change from what it was.
                taxonomy=Taxonomy.objects.select_related("dataset").get(pk=obj.pk),
                taxonomy_name=obj.taxonomy_name,
                applies_to=obj.applies_to,
                required=obj.required,
                position=obj.position,
            )

    def save_formset(self, request, form, formset, change):
        if formset.model is not Label:
            return super().save_formset(request, form, formset, change)
        if not change:
            return self._taxonomy_create(form, formset)
        taxonomy = form.instance
        # What the admin's change message and history read (formset.save() would set these).
        formset.deleted_objects = [label_form.instance for label_form in formset.removed_forms]
        formset.changed_objects, formset.new_objects = [], []
        for label_form in formset.removed_forms:
            choice = label_form.cleaned_data.get("relabel_to") or ""
            removal = label_remove(
                label=label_form.instance,
                relabel_to=Label.objects.get(pk=int(choice)) if choice and choice != DROP_FROM_ANNOTATIONS else None,
                drop_from_annotations=choice == DROP_FROM_ANNOTATIONS,
            )
            if removal.relabelled_finished or removal.relabelled_drafts:
                self.message_user(
                    request,
                    f"Removed “{label_form.instance.name}”: {removal.relabelled_finished} finished and "
                    f"{removal.relabelled_drafts} draft annotation(s) changed.",
                    messages.INFO,
                )
        kept_forms = formset.kept_forms
        for label_form in kept_forms:
            if label_form.is_existing() and label_form.has_changed():
                data = label_form.cleaned_data
                label_update(
                    label=label_form.instance,
                    name=data["name"],
                    hotkey=data["hotkey"],
                    position=data["position"] or 0,
                )
                formset.changed_objects.append((label_form.instance, label_form.changed_data))
        new_forms = [f for f in kept_forms if not f.is_existing()]
        created = taxonomy_add_labels(
            taxonomy=taxonomy,
            labels=[LabelSpec(name=f.cleaned_data["name"], hotkey=f.cleaned_data["hotkey"]) for f in new_forms],
        )
        for label_form, label in zip(new_forms, created):
            label_form.instance = label
        formset.new_objects = created
        ordered = _in_position_order(kept_forms)
        taxonomy_reorder_labels(taxonomy=taxonomy, label_ids=[label_form.instance.pk for label_form in ordered])

    def _taxonomy_create(self, form, formset) -> None:
        """Create the taxonomy of the add page with its labels, in the order of their positions."""
        new = form.instance
        taxonomy = taxonomy_create(
            dataset=new.dataset,
            taxonomy_name=new.taxonomy_name,
            labels=[
                LabelSpec(name=label_form.cleaned_data["name"], hotkey=label_form.cleaned_data["hotkey"])
                for label_form in _in_position_order(formset.kept_forms)
            ],
            multi_label=new.multi_label,
            applies_to=new.applies_to,
            required=new.required,
        )
        # The admin logs the addition and redirects with the page's instance: make it the row just created.
        new.pk, new.position, new.created_at = taxonomy.pk, taxonomy.position, taxonomy.created_at
        new._state.adding, new._state.db = False, taxonomy._state.db
        formset.new_objects = list(taxonomy.labels.all())
        formset.changed_objects, formset.deleted_objects = [], []

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        # Fresh from the database: the page's instance may hold the labels prefetched before the save.
        taxonomy = Taxonomy.objects.get(pk=form.instance.pk)
        removed, renamed_from = taxonomy.nucleus_labels_removed(), taxonomy.nucleus_renamed_from()
        if removed or renamed_from:
            finished = taxonomy.annotations.filter(status=CategoryAnnotation.Status.FINISHED).count()
            why = f"it was renamed from “{renamed_from}”" if renamed_from else f"{', '.join(removed)} changed"
            self.message_user(
                request,
                f"Nucleus keeps labels append-only and annotations under the taxonomy's name. Because {why}, the next "
                f"sync will delete “{renamed_from or taxonomy.taxonomy_name}” on Nucleus, create “{taxonomy.taxonomy_name}” "
                f"with the current labels and re-upload its {finished} finished annotation(s).",
                messages.WARNING,
            )

    def delete_model(self, request, obj):
        # Through the service: it records that Nucleus must delete the taxonomy too.
        taxonomy_remove(taxonomy=obj, confirm=True)

    @admin.action(description="Send finished items back to the queue for the classes added since (multi-label)")
    def ask_new_classes(self, request, queryset):
        for taxonomy in queryset.select_related("dataset"):
            try:
                asked = taxonomy_ask_new_classes(taxonomy=taxonomy)
            except ValidationError as error:
                self.message_user(request, " ".join(error.messages), messages.ERROR)
                continue
            classes = ", ".join(asked.classes) or "none"
            self.message_user(
                request,
                f"“{taxonomy.taxonomy_name}”: {asked.annotations} answer(s) sent back for the classes added since ({classes}); "
                f"{asked.tasks_reopened} item(s) back in the queue.",
                messages.INFO,
            )

    def delete_queryset(self, request, queryset):
        for taxonomy in queryset:
            taxonomy_remove(taxonomy=taxonomy, confirm=True)


def _in_position_order(label_forms: list[LabelInlineForm]) -> list[LabelInlineForm]:
    """Positions are sort keys the admin edits; rows left empty go last, and ties keep the order of
    the rows on the page."""

    def sort_key(pair):
        row, label_form = pair
        position = label_form.cleaned_data["position"]
        return (position is None, position or 0, row)

    return [label_form for _, label_form in sorted(enumerate(label_forms), key=sort_key)]


@admin.register(Scene)
class SceneAdmin(DatasetScopedAdmin, admin.ModelAdmin):
    list_display = ["reference_id", "dataset", "frame_rate", "video_url", "created_at"]
    list_filter = ["dataset"]
    search_fields = ["reference_id"]
    readonly_fields = ["dataset", "reference_id"]
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}, models.JSONField: {"form_class": MetadataFormField}}

    def has_add_permission(self, request):
        # Scenes arrive through the import API and commands, which check every frame.
        return False


@admin.register(Item)
class ItemAdmin(DatasetScopedAdmin, admin.ModelAdmin):
    list_display = ["reference_id", "dataset", "scene", "frame_index", "width", "height", "image_check", "image_error", "created_at"]
    list_filter = ["dataset", "image_check"]
    list_select_related = ["dataset", "scene"]
    search_fields = ["reference_id"]
    readonly_fields = [
        "dataset", "reference_id", "image", "image_url", "width", "height", "image_check", "image_error", "scene", "frame_index",
    ]
    formfield_overrides = {models.JSONField: {"form_class": MetadataFormField}}

    def has_add_permission(self, request):
        # Items arrive through the import API and commands, which check every upload (header, then pixels).
        return False


@admin.register(CategoryAnnotation)
class CategoryAnnotationAdmin(DatasetScopedAdmin, admin.ModelAdmin):
    list_display = [
        "id", "reference_id", "taxonomy", "chosen", "status", "annotator", "sync_state", "sync_attempts", "sync_error_short",
        "updated_at",
    ]
    list_filter = ["dataset", "taxonomy", "status", "sync_state"]
    list_select_related = ["item", "scene", "taxonomy", "label", "annotator"]
    search_fields = ["item__reference_id", "scene__reference_id"]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("labels")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        # Labels change through the labeling services, which version them for the sync.
        return False

    def has_delete_permission(self, request, obj=None):
        # Neither audited nor told to Nucleus here: an answer goes with its taxonomy or item (services).
        return False

    @admin.display(description="label(s)")
    def chosen(self, annotation):
        return ", ".join(annotation.chosen_label_names())

    @admin.display(description="sync error")
    def sync_error_short(self, annotation):
        return Truncator(annotation.sync_error).chars(120)
