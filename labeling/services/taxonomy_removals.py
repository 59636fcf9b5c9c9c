"""Moving annotations off a label or a taxonomy that goes: relabel, take it out, or (confirmed)
delete them with the taxonomy. Finished annotations touched get a new version for the sync, and
every change is audited."""

from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import Change, audit_record
from labeling.models import AnnotationLabel, CategoryAnnotation
from labeling.services.locks import answers_tasks_lock, taxonomy_labels_lock
from labeling.services.sync import nucleus_taxonomy_deletion_record, sync_enqueue_on_commit
from taxonomies.models import Label, Taxonomy
from taxonomies.services import label_delete, taxonomies_changed


@dataclass(frozen=True)
class LabelRemoval:
    relabelled_finished: int
    relabelled_drafts: int


def label_remove(*, label: Label, relabel_to: Label | None = None, drop_from_annotations: bool = False) -> LabelRemoval:
    """Remove a label from its taxonomy, moving the annotations that use it.

    Finished annotations that use the label are the labelers' work, so removing it needs an
    explicit decision: `relabel_to` another label of the taxonomy, or (multi-label taxonomies only)
    `drop_from_annotations` to take it out of their chosen sets. Each relabelled finished annotation
    gets a new version for the sync. Drafts follow the same decision; with none given, a draft just
    loses the label.

    Lock order (`labeling.services.locks`): the taxonomy's labels, then tasks before answers, each
    in id order, as the ask for new classes and every write path take them.
    """
    taxonomy = label.taxonomy
    if relabel_to is not None and (relabel_to.taxonomy_id != taxonomy.id or relabel_to.id == label.id):
        raise ValidationError({"relabel_to": "Relabel to another label of the same taxonomy."})
    if drop_from_annotations and not taxonomy.multi_label:
        raise ValidationError(
            {"relabel_to": "A single-label annotation cannot be left without a label: choose a label to relabel to."}
        )
    with transaction.atomic():
        if taxonomy.multi_label:
            used = CategoryAnnotation.objects.filter(chosen__label=label)
        else:
            used = CategoryAnnotation.objects.filter(label=label)
        taxonomy_labels_lock(taxonomy=taxonomy)
        answers_tasks_lock(answers=used)
        locked = list(used.select_for_update(of=("self",)).order_by("id").values_list("id", "status"))
        finished_ids = [pk for pk, status in locked if status == CategoryAnnotation.Status.FINISHED]
        draft_ids = [pk for pk, status in locked if status == CategoryAnnotation.Status.DRAFT]
        if finished_ids and relabel_to is None and not drop_from_annotations:
            raise ValidationError(
                {
                    "relabel_to": f"“{label.name}” is used by {len(finished_ids)} finished annotation(s): "
                    "choose a label to relabel them to"
                    + (", or confirm removing it from them." if taxonomy.multi_label else ".")
                },
                code="label_in_use",
            )
        if taxonomy.multi_label:
            if relabel_to is not None:
                AnnotationLabel.objects.bulk_create(
                    [
                        AnnotationLabel(annotation_id=annotation_id, label=relabel_to, taxonomy=taxonomy)
                        for annotation_id in finished_ids + draft_ids
                    ],
                    ignore_conflicts=True,
                )
                _shown_add(annotation_ids=finished_ids + draft_ids, label=relabel_to)
            AnnotationLabel.objects.filter(label=label).delete()
        else:
            CategoryAnnotation.objects.filter(id__in=finished_ids + draft_ids).update(label=relabel_to)
        CategoryAnnotation.objects.filter(id__in=finished_ids).update(
            version=F("version") + 1,
            sync_state=CategoryAnnotation.SyncState.PENDING,
            sync_attempts=0,
            sync_next_attempt_at=None,
            sync_error="",
            updated_at=timezone.now(),
        )
        sync_enqueue_on_commit(dataset_id=taxonomy.dataset_id)
        if finished_ids:
            audit_record(dataset_id=taxonomy.dataset_id, changes=[Change(
                action=AuditEvent.Action.ANNOTATION_RELABEL, target_type="label", target_id=label.pk, taxonomy_name=taxonomy.taxonomy_name,
                before={"label": label.name, "annotation_ids": finished_ids},
                after={"label": relabel_to.name if relabel_to is not None else None, "annotation_ids": finished_ids},
            )])
        label_delete(label=label)
    return LabelRemoval(relabelled_finished=len(finished_ids), relabelled_drafts=len(draft_ids))


def _shown_add(*, annotation_ids: list[int], label: Label) -> None:
    """Count `label` among the classes these multi-label annotations were shown: they now claim it
    True (relabelled to it), and every chosen class must be a shown one to be sent."""
    annotations = CategoryAnnotation.objects.filter(id__in=annotation_ids).exclude(shown_label_ids__isnull=True).only("id", "shown_label_ids")
    grown = [annotation for annotation in annotations if label.id not in annotation.shown_label_ids]
    for annotation in grown:
        annotation.shown_label_ids = sorted([*annotation.shown_label_ids, label.id])
    CategoryAnnotation.objects.bulk_update(grown, ["shown_label_ids"], batch_size=1000)


def taxonomy_remove(*, taxonomy: Taxonomy, confirm: bool) -> int:
    """Delete a taxonomy with its labels and annotations. Finished annotations are labelers' work, so
    their loss must be confirmed; returns how many annotations went with it."""
    with transaction.atomic():
        finished = taxonomy.annotations.filter(status=CategoryAnnotation.Status.FINISHED).count()
        if finished and not confirm:
            raise ValidationError(
                {"confirm": f"“{taxonomy.taxonomy_name}” has {finished} finished annotation(s); deleting it deletes them. Confirm to go ahead."},
                code="taxonomy_in_use",
            )
        deleted = taxonomy.annotations.count()
        audit_record(dataset_id=taxonomy.dataset_id, changes=[Change(
            action=AuditEvent.Action.TAXONOMY_DELETE, target_type="taxonomy", target_id=taxonomy.pk, taxonomy_name=taxonomy.taxonomy_name,
            before={"annotations": deleted, "finished_annotations": finished},
        )])
        nucleus_taxonomy_deletion_record(taxonomy=taxonomy)
        taxonomy.delete()
        taxonomies_changed(dataset_id=taxonomy.dataset_id)
    return deleted
