"""Writes to annotations: saving an answer, and moving annotations off a label that is removed.

Every change to a finished annotation bumps its version and puts it back in the sync's outbox
(sync_state pending) in the same transaction.
"""

import operator
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import reduce

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import Change, audit_record
from labeling.errors import BatchInvalid, RowError
from labeling.models import AnnotationLabel, CategoryAnnotation, Dataset, Item, Scene, Task
from labeling.services.sync import nucleus_taxonomy_deletion_record, sync_enqueue_on_commit
from labeling.validators import validate_metadata
from taxonomies.models import Label, Taxonomy
from taxonomies.services import label_delete, taxonomies_changed


@dataclass(frozen=True)
class AnnotationSaved:
    annotation: CategoryAnnotation
    changed: bool


@dataclass(frozen=True)
class Answer:
    """One resolved row: the labels chosen for an item or scene in one taxonomy."""

    target: Item | Scene
    taxonomy: Taxonomy
    labels: list[Label]
    metadata: dict


def annotation_save(
    *,
    target: Item | Scene,
    taxonomy: Taxonomy,
    labels: Sequence[Label],
    annotator,
    finished: bool,
    metadata: dict | None = None,
) -> AnnotationSaved:
    """Store the label(s) chosen for an item or scene in one taxonomy (see `answers_save`)."""
    answer = Answer(target=target, taxonomy=taxonomy, labels=list(labels), metadata={} if metadata is None else metadata)
    (saved,) = answers_save(target=target, answers=[answer], annotator=annotator, finished=finished)
    return saved


def answers_save(
    *, target: Item | Scene, answers: Sequence[Answer], annotator, finished: bool, surely_new: bool = False
) -> list[AnnotationSaved]:
    """Store the answers for one item or scene, at most one per taxonomy, in a number of queries
    that does not grow with the number of taxonomies.

    A finished annotation whose labels or metadata change gets a new version and goes back to the
    sync's pending state, in the same transaction as the change. Saving the same answer again
    changes nothing (and is reported as unchanged). A finished annotation cannot go back to draft.

    `surely_new`: the caller saw no annotation of the target a moment ago (a first submit), so the
    answers are inserted first, skipping any that an annotation made since then is in the way of;
    only those are then read and compared. Otherwise the existing ones are read (locked) first.
    """
    for answer in answers:
        _check_answer(target=target, answer=answer, finished=finished)
    target_lookup = {"item": target} if isinstance(target, Item) else {"scene": target}
    now = timezone.now()
    saved: dict[int, AnnotationSaved] = {}
    labels_added: list[tuple[CategoryAnnotation, Taxonomy, int]] = []
    # Finished annotations created or changed, with their state before (None: newly finished), for the audit log.
    audited: list[tuple[CategoryAnnotation, Answer, dict | None]] = []
    # No savepoint of its own: when nested (a queue submit) a failure here fails the caller too.
    with transaction.atomic(savepoint=False):
        if surely_new:
            fresh = {}
            for answer in answers:
                annotation = CategoryAnnotation(dataset_id=target.dataset_id, taxonomy=answer.taxonomy, **target_lookup)
                _answer_apply(annotation, answer, annotator=annotator, now=now, finished=finished, was_finished=False)
                fresh[answer.taxonomy.id] = annotation
            _insert_unless_present(list(fresh.values()))
            for answer in answers:
                annotation = fresh[answer.taxonomy.id]
                if annotation.pk is None:
                    continue  # in the way of an annotation made since: read and compared below
                saved[answer.taxonomy.id] = AnnotationSaved(annotation=annotation, changed=True)
                audited.append((annotation, answer, None))
                if answer.taxonomy.multi_label:
                    labels_added.extend((annotation, answer.taxonomy, label.id) for label in answer.labels)
        answers_left = [answer for answer in answers if answer.taxonomy.id not in saved]
        # Locked, so the versions computed below from what was read cannot be raced.
        existing = {
            annotation.taxonomy_id: annotation
            for annotation in CategoryAnnotation.objects.select_for_update().filter(
                taxonomy_id__in=[answer.taxonomy.id for answer in answers_left], **target_lookup
            )
        } if answers_left else {}
        for answer in answers_left:
            if answer.taxonomy.id in existing:
                # What the caller reads next (the answer's taxonomy_name, reference_id) without a query each.
                existing[answer.taxonomy.id].taxonomy = answer.taxonomy
                setattr(existing[answer.taxonomy.id], next(iter(target_lookup)), target)
        chosen = _chosen_label_ids(
            [existing[a.taxonomy.id].id for a in answers_left if a.taxonomy.multi_label and a.taxonomy.id in existing]
        )
        created, updated, labels_removed = [], [], []
        for answer in answers_left:
            new_ids = {label.id for label in answer.labels}
            annotation = existing.get(answer.taxonomy.id)
            if annotation is None:
                annotation = CategoryAnnotation(dataset_id=target.dataset_id, taxonomy=answer.taxonomy, **target_lookup)
                old_ids, was_finished = set(), False
                created.append(annotation)
            else:
                if annotation.is_finished and not finished:
                    raise ValidationError({"status": "This annotation is already finished; submit the change as finished."})
                old_ids = chosen[annotation.id] if answer.taxonomy.multi_label else {annotation.label_id} - {None}
                was_finished = annotation.is_finished
                content_changed = new_ids != old_ids or answer.metadata != annotation.metadata
                if not content_changed and was_finished == finished:
                    saved[answer.taxonomy.id] = AnnotationSaved(annotation=annotation, changed=False)
                    continue
                updated.append(annotation)
            if answer.taxonomy.multi_label:
                labels_removed.extend((annotation.id, label_id) for label_id in old_ids - new_ids)
                labels_added.extend((annotation, answer.taxonomy, label_id) for label_id in new_ids - old_ids)
            audited.append((annotation, answer, _audit_state(answer.taxonomy, old_ids, annotation) if was_finished else None))
            _answer_apply(annotation, answer, annotator=annotator, now=now, finished=finished, was_finished=was_finished)
            saved[answer.taxonomy.id] = AnnotationSaved(annotation=annotation, changed=True)
        CategoryAnnotation.objects.bulk_create(created)
        if updated:
            CategoryAnnotation.objects.bulk_update(updated, fields=ANSWER_UPDATE_FIELDS)
        if labels_removed:
            AnnotationLabel.objects.filter(
                reduce(operator.or_, (Q(annotation_id=a, label_id=label) for a, label in labels_removed))
            ).delete()
        AnnotationLabel.objects.bulk_create(
            [AnnotationLabel(annotation=a, taxonomy=taxonomy, label_id=label_id) for a, taxonomy, label_id in labels_added]
        )
        if finished:  # drafts are work in progress, not changes to audit; one INSERT, none when nothing changed
            audit_record(dataset_id=target.dataset_id, actor=annotator, changes=[_audit_change(target, *row) for row in audited])
    return [saved[answer.taxonomy.id] for answer in answers]


def _audit_state(taxonomy: Taxonomy, label_ids, annotation: CategoryAnnotation) -> dict:
    """An annotation's content as the audit log shows it (label names from the taxonomy's labels,
    which the callers have prefetched)."""
    names = {label.id: label.name for label in taxonomy.labels.all()}
    return {"labels": sorted(names.get(label_id, str(label_id)) for label_id in label_ids), "metadata": annotation.metadata, "version": annotation.version}


def _audit_change(target: Item | Scene, annotation: CategoryAnnotation, answer: Answer, before: dict | None) -> Change:
    return Change(
        action=AuditEvent.Action.ANNOTATION_CHANGE if before is not None else AuditEvent.Action.ANNOTATION_CREATE,
        target_type="annotation",
        target_id=annotation.pk,
        reference_id=target.reference_id,
        taxonomy_name=answer.taxonomy.taxonomy_name,
        before=before,
        after={"labels": sorted(label.name for label in answer.labels), "metadata": answer.metadata, "version": annotation.version},
    )


def _answer_apply(annotation: CategoryAnnotation, answer: Answer, *, annotator, now, finished: bool, was_finished: bool) -> None:
    """Put the answer's content on the annotation (the chosen labels of a multi-label one are rows
    of their own, written by the caller)."""
    if not answer.taxonomy.multi_label:
        annotation.label = answer.labels[0] if answer.labels else None
    annotation.metadata = answer.metadata
    annotation.annotator = annotator
    annotation.updated_at = now
    if finished:
        annotation.status = CategoryAnnotation.Status.FINISHED
        annotation.finished_at = annotation.finished_at or now
        _mark_for_sync(annotation, new_version=was_finished)


def _insert_unless_present(annotations: list[CategoryAnnotation]) -> None:
    """Insert the annotations in one statement, skipping each one whose (item or scene, taxonomy)
    already has an annotation (ON CONFLICT DO NOTHING covers unique constraints only: any other
    violation fails the statement); set the ids of the inserted ones."""
    if not annotations:
        return
    fields = [field for field in CategoryAnnotation._meta.concrete_fields if not field.primary_key]
    quote = connection.ops.quote_name
    row = "(" + ", ".join(["%s"] * len(fields)) + ")"
    params = [field.get_db_prep_save(field.pre_save(annotation, add=True), connection) for annotation in annotations for field in fields]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {quote(CategoryAnnotation._meta.db_table)} ({', '.join(quote(field.column) for field in fields)}) "
            f"VALUES {', '.join([row] * len(annotations))} ON CONFLICT DO NOTHING RETURNING id, taxonomy_id",
            params,
        )
        inserted = dict((taxonomy_id, annotation_id) for annotation_id, taxonomy_id in cursor.fetchall())
    for annotation in annotations:
        if annotation.taxonomy_id in inserted:
            annotation.pk = inserted[annotation.taxonomy_id]
            annotation._state.adding = False


ANSWER_UPDATE_FIELDS = [
    "label", "metadata", "annotator", "updated_at", "status", "finished_at",
    "version", "sync_state", "sync_attempts", "sync_next_attempt_at", "sync_error",
]


def _chosen_label_ids(annotation_ids: list[int]) -> dict[int, set[int]]:
    chosen: dict[int, set[int]] = defaultdict(set)
    if annotation_ids:
        for annotation_id, label_id in AnnotationLabel.objects.filter(annotation_id__in=annotation_ids).values_list(
            "annotation_id", "label_id"
        ):
            chosen[annotation_id].add(label_id)
    return chosen


def _check_answer(*, target, answer: "Answer", finished: bool) -> None:
    taxonomy, labels = answer.taxonomy, answer.labels
    if target.dataset_id != taxonomy.dataset_id:
        raise ValidationError({"taxonomy_name": f"“{taxonomy.taxonomy_name}” is not a taxonomy of this dataset."})
    if isinstance(target, Item) and not taxonomy.applies_to_items():
        raise ValidationError({"taxonomy_name": f"“{taxonomy.taxonomy_name}” applies to scenes, not items."})
    if isinstance(target, Scene) and not taxonomy.applies_to_scenes():
        raise ValidationError({"taxonomy_name": f"“{taxonomy.taxonomy_name}” applies to items, not scenes."})
    foreign = [label.name for label in labels if label.taxonomy_id != taxonomy.id]
    if foreign:
        raise ValidationError(
            {"label": f"Not a label of “{taxonomy.taxonomy_name}”: {', '.join(foreign)}."}
        )
    if len({label.id for label in labels}) != len(labels):
        raise ValidationError({"labels": "A label is chosen more than once."})
    if not taxonomy.multi_label and len(labels) > 1:
        raise ValidationError(
            {"label": f"“{taxonomy.taxonomy_name}” is a single-label taxonomy: choose one label, not {len(labels)}."}
        )
    if finished and not taxonomy.multi_label and not labels:
        raise ValidationError({"label": f"Choose a label for “{taxonomy.taxonomy_name}”."})
    try:
        validate_metadata(answer.metadata)
    except ValidationError as error:
        raise ValidationError({"metadata": error.messages}) from None


def _mark_for_sync(annotation: CategoryAnnotation, *, new_version: bool) -> None:
    """Outbox bookkeeping for a finished annotation whose content Nucleus does not have yet.

    The caller holds the row's lock, so the version read with it can be incremented here."""
    if new_version:
        annotation.version += 1
    annotation.sync_state = CategoryAnnotation.SyncState.PENDING
    annotation.sync_attempts = 0
    annotation.sync_next_attempt_at = None
    annotation.sync_error = ""
    sync_enqueue_on_commit(dataset_id=annotation.dataset_id)


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
        finished_ids = list(used.filter(status=CategoryAnnotation.Status.FINISHED).values_list("id", flat=True))
        draft_ids = list(used.filter(status=CategoryAnnotation.Status.DRAFT).values_list("id", flat=True))
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


ANSWER_FIELDS = frozenset({"taxonomy_name", "label", "labels", "metadata"})


def answer_resolve(
    *,
    taxonomies: dict[str, Taxonomy],
    target: Item | Scene,
    row: dict,
    index: int | None,
    other_fields: frozenset[str] = frozenset(),
    draft: bool = False,
) -> tuple[Answer | None, list[RowError]]:
    """Check one `{"taxonomy_name", "label" | "labels", "metadata"}` row in Nucleus's vocabulary
    (plus `other_fields` the caller reads itself, such as `reference_id`). A `draft` answer may
    leave a single-label taxonomy without a label (`"label": null`).

    `taxonomies` maps the dataset's taxonomy names to taxonomies with their labels prefetched, so a
    batch resolves without a query per row.
    """
    def error(field: str, message: str) -> tuple[None, list[RowError]]:
        return None, [RowError(index=index, field=field, message=message)]

    if not isinstance(row, dict):
        return error("", "Each annotation is a JSON object.")
    unknown = sorted(set(row) - ANSWER_FIELDS - other_fields)
    if unknown:
        known = ", ".join(sorted(ANSWER_FIELDS | other_fields))
        return error(unknown[0], f"Unknown field; an annotation has {known}.")
    taxonomy_name = row.get("taxonomy_name")
    if not isinstance(taxonomy_name, str) or not taxonomy_name:
        return error("taxonomy_name", "Give the taxonomy_name this answer is for.")
    taxonomy = taxonomies.get(taxonomy_name)
    if taxonomy is None:
        known = ", ".join(sorted(taxonomies)) or "none"
        return error("taxonomy_name", f"Unknown taxonomy “{taxonomy_name}” (this dataset has: {known}).")
    if isinstance(target, Item) and not taxonomy.applies_to_items():
        return error("taxonomy_name", f"“{taxonomy_name}” applies to scenes, not items.")
    if isinstance(target, Scene) and not taxonomy.applies_to_scenes():
        return error("taxonomy_name", f"“{taxonomy_name}” applies to items, not scenes.")
    if taxonomy.multi_label:
        names = row.get("labels")
        if "label" in row or not isinstance(names, list) or not all(isinstance(name, str) for name in names):
            return error("labels", f"“{taxonomy_name}” is multi-label: give \"labels\" as a list of label names.")
    else:
        name = row.get("label")
        if "labels" in row or isinstance(name, list):
            return error("label", f"“{taxonomy_name}” is a single-label taxonomy: give one \"label\", not a list.")
        if draft and name is None:
            names = []  # a draft may leave a single-label taxonomy unanswered
        elif not isinstance(name, str) or not name:
            return error("label", f"Choose a label for “{taxonomy_name}”.")
        else:
            names = [name]
    by_name = {label.name: label for label in taxonomy.labels.all()}
    unknown = [name for name in names if name not in by_name]
    if unknown:
        return error(
            "labels" if taxonomy.multi_label else "label",
            f"Not a label of “{taxonomy_name}”: {', '.join(unknown)} (labels: {', '.join(by_name)}).",
        )
    if len(set(names)) != len(names):
        return error("labels", "A label is listed more than once.")
    metadata = {} if row.get("metadata") is None else row["metadata"]
    try:
        validate_metadata(metadata)
    except ValidationError as problem:
        return error("metadata", problem.messages[0])
    return Answer(target=target, taxonomy=taxonomy, labels=[by_name[name] for name in names], metadata=metadata), []


def annotations_import(*, dataset: Dataset, rows: Sequence[dict], annotator) -> list[AnnotationSaved]:
    """Create or update finished annotations from `{"reference_id", "taxonomy_name", "label" |
    "labels", "metadata"}` rows: all of them, or (with every bad row named) none."""
    targets = targets_by_reference_id(dataset=dataset, reference_ids=[row.get("reference_id") for row in rows if isinstance(row, dict)])
    taxonomies = taxonomies_by_name(dataset=dataset)
    answers, errors, seen = [], [], set()
    for index, row in enumerate(rows):
        target = targets.get(row.get("reference_id")) if isinstance(row, dict) else None
        if target is None:
            reference_id = row.get("reference_id") if isinstance(row, dict) else None
            errors.append(
                RowError(index=index, field="reference_id", message=f"No item or scene has reference_id {reference_id!r}.")
            )
            continue
        answer, row_errors = answer_resolve(
            taxonomies=taxonomies, target=target, row=row, index=index, other_fields=frozenset({"reference_id"})
        )
        errors.extend(row_errors)
        if answer is None:
            continue
        key = (type(target), target.pk, answer.taxonomy.pk)
        if key in seen:
            errors.append(RowError(index=index, field="taxonomy_name", message="This reference_id and taxonomy_name are already in the batch."))
        seen.add(key)
        answers.append(answer)
    if errors:
        raise BatchInvalid(errors)
    by_target: dict[tuple[type, int], list[Answer]] = defaultdict(list)
    for answer in answers:
        by_target[(type(answer.target), answer.target.pk)].append(answer)
    with transaction.atomic():
        saved = [
            result
            for target_answers in by_target.values()
            for result in answers_save(
                target=target_answers[0].target, answers=target_answers, annotator=annotator, finished=True
            )
        ]
        tasks_mark_done_if_answered(dataset=dataset, targets=[answer.target for answer in answers], user=annotator)
    return saved


def targets_by_reference_id(*, dataset: Dataset, reference_ids: Sequence) -> dict[str, Item | Scene]:
    """Items and scenes of the dataset by reference_id (they share one namespace), in two queries."""
    wanted = sorted({ref for ref in reference_ids if isinstance(ref, str)})
    found: dict[str, Item | Scene] = {item.reference_id: item for item in Item.objects.filter(dataset=dataset, reference_id__in=wanted)}
    found.update({scene.reference_id: scene for scene in Scene.objects.filter(dataset=dataset, reference_id__in=wanted)})
    return found


def taxonomies_by_name(*, dataset: Dataset) -> dict[str, Taxonomy]:
    return {taxonomy.taxonomy_name: taxonomy for taxonomy in dataset.taxonomies.prefetch_related("labels")}


# Per process: dataset id -> ((created_at, taxonomies_revision), its taxonomies by name).
_taxonomies_in_memory: dict[int, tuple[tuple, dict[str, Taxonomy]]] = {}


def taxonomies_by_name_cached(*, dataset: Dataset) -> dict[str, Taxonomy]:
    """`taxonomies_by_name`, kept in memory per process and read again when the dataset's
    `taxonomies_revision` has moved (every taxonomy or label change bumps it), so the labeling
    queue's submits do not read the same taxonomies thousands of times an hour.

    The dataset must have been read in this request (as the API's dataset lookup does), so its
    revision is current. The taxonomies returned are shared between requests: read them only."""
    # created_at tells apart a dataset that reuses a deleted one's id (SQLite reuses ids).
    version = (dataset.created_at, dataset.taxonomies_revision)
    cached = _taxonomies_in_memory.get(dataset.id)
    if cached is not None and cached[0] == version:
        return cached[1]
    taxonomies = taxonomies_by_name(dataset=dataset)
    _taxonomies_in_memory[dataset.id] = (version, taxonomies)
    return taxonomies


def tasks_mark_done_if_answered(*, dataset: Dataset, targets: Sequence[Item | Scene], user) -> int:
    """Close the queue tasks of these items or scenes whose required taxonomies all have finished
    annotations now, so the queue does not hand out work that was done another way."""
    taxonomies = list(dataset.taxonomies.all())
    closed = 0
    for model, field, applies in ((Item, "item_id", Taxonomy.applies_to_items), (Scene, "scene_id", Taxonomy.applies_to_scenes)):
        ids = {target.pk for target in targets if isinstance(target, model)}
        required = [taxonomy.id for taxonomy in taxonomies if taxonomy.required and applies(taxonomy)]
        if not ids:
            continue
        if required:
            ids = set(
                CategoryAnnotation.objects.filter(
                    **{f"{field}__in": ids}, taxonomy_id__in=required, status=CategoryAnnotation.Status.FINISHED
                )
                .values(field)
                .annotate(answered=Count("id"))
                .filter(answered=len(required))
                .values_list(field, flat=True)
            )
        closed += Task.objects.filter(**{f"{field}__in": ids}, state=Task.State.OPEN).update(
            state=Task.State.DONE, holder=None, lease_expires_at=None, done_by=user, done_at=timezone.now()
        )
    return closed


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
