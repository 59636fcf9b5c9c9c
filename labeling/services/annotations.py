"""Writes to annotations: checking and saving answers (moving them off a removed label or taxonomy
is `taxonomy_removals`, bringing rows in is `annotations_import`).

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
from django.db.models import Q
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import Change, audit_record
from labeling.errors import RowError
from labeling.models import AnnotationLabel, CategoryAnnotation, Item, Scene
from labeling.services.sync import sync_enqueue_on_commit
from labeling.validators import validate_metadata
from taxonomies.models import Label, Taxonomy


@dataclass(frozen=True)
class AnnotationSaved:
    annotation: CategoryAnnotation
    changed: bool


@dataclass(frozen=True)
class Answer:
    """One resolved row: the labels chosen for an item or scene in one taxonomy. `shown`
    (multi-label only): the classes its labeler was shown, when the caller says; None means every
    class the taxonomy has now (see `_multi_label_merge`)."""

    target: Item | Scene
    taxonomy: Taxonomy
    labels: list[Label]
    metadata: dict
    shown: list[Label] | None = None


def annotation_save(
    *,
    target: Item | Scene,
    taxonomy: Taxonomy,
    labels: Sequence[Label],
    annotator,
    finished: bool,
    metadata: dict | None = None,
    shown: Sequence[Label] | None = None,
) -> AnnotationSaved:
    """Store the label(s) chosen for an item or scene in one taxonomy (see `answers_save`)."""
    answer = Answer(
        target=target, taxonomy=taxonomy, labels=list(labels), metadata={} if metadata is None else metadata,
        shown=None if shown is None else list(shown),
    )
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
    A multi-label answer records the classes its labeler was shown and speaks for those alone
    (`_multi_label_merge`); a finished one that was shown the classes a send-back asks for answers
    them (they leave `asked_label_ids`).

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
    audited: list[tuple[CategoryAnnotation, Answer, dict | None, set[int]]] = []
    # No savepoint of its own: when nested (a queue submit) a failure here fails the caller too.
    with transaction.atomic(savepoint=False):
        if surely_new:
            fresh = {}
            for answer in answers:
                annotation = CategoryAnnotation(dataset_id=target.dataset_id, taxonomy=answer.taxonomy, **target_lookup)
                _, shown = _multi_label_merge(answer, old_chosen=set(), old_shown=[])
                _answer_apply(annotation, answer, shown=shown, annotator=annotator, now=now, finished=finished, was_finished=False)
                fresh[answer.taxonomy.id] = annotation
            _insert_unless_present(list(fresh.values()))
            for answer in answers:
                annotation = fresh[answer.taxonomy.id]
                if annotation.pk is None:
                    continue  # in the way of an annotation made since: read and compared below
                saved[answer.taxonomy.id] = AnnotationSaved(annotation=annotation, changed=True)
                audited.append((annotation, answer, None, {label.id for label in answer.labels}))
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
            annotation = existing.get(answer.taxonomy.id)
            if annotation is None:
                annotation = CategoryAnnotation(dataset_id=target.dataset_id, taxonomy=answer.taxonomy, **target_lookup)
                old_ids, was_finished = set(), False
                new_ids, shown = _multi_label_merge(answer, old_chosen=old_ids, old_shown=[])
                created.append(annotation)
            else:
                if annotation.is_finished and not finished:
                    raise ValidationError({"status": "This annotation is already finished; submit the change as finished."})
                old_ids = chosen[annotation.id] if answer.taxonomy.multi_label else {annotation.label_id} - {None}
                was_finished = annotation.is_finished
                new_ids, shown = _multi_label_merge(answer, old_chosen=old_ids, old_shown=annotation.shown_label_ids)
                content_changed = (
                    new_ids != old_ids or answer.metadata != annotation.metadata
                    or shown != _shown_as_stored(answer.taxonomy, annotation.shown_label_ids)
                )
                # A finished answer that was shown classes a send-back asks for answers them.
                answers_ask = finished and bool(set(annotation.asked_label_ids or ()) & set(shown or ()))
                if not content_changed and was_finished == finished and not answers_ask:
                    saved[answer.taxonomy.id] = AnnotationSaved(annotation=annotation, changed=False)
                    continue
                updated.append(annotation)
            if answer.taxonomy.multi_label:
                labels_removed.extend((annotation.id, label_id) for label_id in old_ids - new_ids)
                labels_added.extend((annotation, answer.taxonomy, label_id) for label_id in new_ids - old_ids)
            audited.append((annotation, answer, _audit_state(answer.taxonomy, old_ids, annotation) if was_finished else None, new_ids))
            _answer_apply(annotation, answer, shown=shown, annotator=annotator, now=now, finished=finished, was_finished=was_finished)
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


def _multi_label_merge(answer: Answer, *, old_chosen: set[int], old_shown: list[int] | None) -> tuple[set[int], list[int] | None]:
    """What an answer leaves stored: the ids of the chosen labels and (multi-label) of the classes shown.

    A multi-label answer speaks for the classes its labeler was shown now (`answer.shown`, else
    every class the taxonomy has): their choices replace the old ones, the old choices of the other
    classes stand (an item sent back for new classes keeps its first answers) and the classes shown
    add up; classes removed since drop out."""
    chosen_now = {label.id for label in answer.labels}
    if not answer.taxonomy.multi_label:
        return chosen_now, None
    current = {label.id for label in answer.taxonomy.labels.all()}
    shown_now = current if answer.shown is None else {label.id for label in answer.shown}
    before = current if old_shown is None else set(old_shown)  # None: written outside the services
    return (old_chosen - shown_now) | chosen_now, sorted((before | shown_now) & current)


def _shown_as_stored(taxonomy: Taxonomy, stored: list[int] | None) -> list[int] | None:
    """The classes an annotation was shown, as `_multi_label_merge` would record them unchanged."""
    if not taxonomy.multi_label:
        return None
    current = {label.id for label in taxonomy.labels.all()}
    return sorted((current if stored is None else set(stored)) & current)


def _audit_state(taxonomy: Taxonomy, label_ids, annotation: CategoryAnnotation) -> dict:
    """An annotation's content as the audit log shows it (label names from the taxonomy's labels,
    which the callers have prefetched)."""
    names = {label.id: label.name for label in taxonomy.labels.all()}
    return {"labels": sorted(names.get(label_id, str(label_id)) for label_id in label_ids), "metadata": annotation.metadata, "version": annotation.version}


def _audit_change(target: Item | Scene, annotation: CategoryAnnotation, answer: Answer, before: dict | None, chosen_ids: set[int]) -> Change:
    if answer.taxonomy.multi_label:  # the classes chosen after the merge, not only the ones this answer gave
        after = _audit_state(answer.taxonomy, chosen_ids, annotation)
    else:
        after = {"labels": [label.name for label in answer.labels], "metadata": answer.metadata, "version": annotation.version}
    return Change(
        action=AuditEvent.Action.ANNOTATION_CHANGE if before is not None else AuditEvent.Action.ANNOTATION_CREATE,
        target_type="annotation",
        target_id=annotation.pk,
        reference_id=target.reference_id,
        taxonomy_name=answer.taxonomy.taxonomy_name,
        before=before,
        after=after,
    )


def _answer_apply(
    annotation: CategoryAnnotation, answer: Answer, *, shown: list[int] | None, annotator, now, finished: bool, was_finished: bool
) -> None:
    """Put the answer's content on the annotation, with the classes its labeler was shown (from
    `_multi_label_merge`; the chosen labels of a multi-label one are rows of their own, written by
    the caller). A finished answer is the answer to a send-back for new classes, if one was asked."""
    if not answer.taxonomy.multi_label:
        annotation.label = answer.labels[0] if answer.labels else None
    annotation.shown_label_ids = shown
    if finished and annotation.asked_label_ids:
        # Classes asked by a send-back stay asked until an answer was shown them.
        annotation.asked_label_ids = sorted(set(annotation.asked_label_ids) - set(shown or ())) or None
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
    "label", "shown_label_ids", "asked_label_ids", "metadata", "annotator", "updated_at", "status", "finished_at",
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
    problem = _shown_problem(taxonomy=taxonomy, labels=labels, shown=answer.shown)
    if problem:
        raise ValidationError({"shown": problem})
    try:
        validate_metadata(answer.metadata)
    except ValidationError as error:
        raise ValidationError({"metadata": error.messages}) from None


def _shown_problem(*, taxonomy: Taxonomy, labels: Sequence[Label], shown: Sequence[Label] | None) -> str | None:
    """What is wrong with the classes an answer says its labeler was shown, if anything: they are
    for multi-label taxonomies, labels of the taxonomy, each once, and include every chosen label."""
    if shown is None:
        return None
    if not taxonomy.multi_label:
        return f"“{taxonomy.taxonomy_name}” is a single-label taxonomy: \"shown\" is for multi-label ones."
    foreign = [label.name for label in shown if label.taxonomy_id != taxonomy.id]
    if foreign:
        return f"Not a label of “{taxonomy.taxonomy_name}”: {', '.join(foreign)}."
    ids = {label.id for label in shown}
    if len(ids) != len(shown):
        return "A class is listed more than once."
    unseen = [label.name for label in labels if label.id not in ids]
    if unseen:
        return f"Chosen but not shown: {', '.join(unseen)} (\"shown\" lists every class the labeler saw)."
    return None


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


ANSWER_FIELDS = frozenset({"taxonomy_name", "label", "labels", "shown", "metadata"})


def answer_resolve(
    *,
    taxonomies: dict[str, Taxonomy],
    target: Item | Scene,
    row: dict,
    index: int | None,
    other_fields: frozenset[str] = frozenset(),
    draft: bool = False,
) -> tuple[Answer | None, list[RowError]]:
    """Check one `{"taxonomy_name", "label" | "labels", "shown", "metadata"}` row in Nucleus's
    vocabulary (plus `other_fields` the caller reads itself, such as `reference_id`). A `draft`
    answer may leave a single-label taxonomy without a label (`"label": null`). `shown` (optional,
    multi-label): the classes the labeler was shown, which the answer speaks for; without it, every
    class the taxonomy has now.

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
    shown = None
    if row.get("shown") is not None:
        shown_names = row["shown"]
        if not isinstance(shown_names, list) or not all(isinstance(name, str) for name in shown_names):
            return error("shown", "Give \"shown\" as a list of label names.")
        unknown = [name for name in shown_names if name not in by_name]
        if unknown:
            return error("shown", f"Not a label of “{taxonomy_name}”: {', '.join(unknown)} (labels: {', '.join(by_name)}).")
        shown = [by_name[name] for name in shown_names]
    labels = [by_name[name] for name in names]
    problem = _shown_problem(taxonomy=taxonomy, labels=labels, shown=shown)
    if problem:
        return error("shown", problem)
    metadata = {} if row.get("metadata") is None else row["metadata"]
    try:
        validate_metadata(metadata)
    except ValidationError as problem:
        return error("metadata", problem.messages[0])
    return Answer(target=target, taxonomy=taxonomy, labels=labels, metadata=metadata, shown=shown), []
