"""Bringing existing labels in: rows of `{"reference_id", "taxonomy_name", "label" | "labels",
"metadata"}` stored as finished annotations (the annotations API and `manage.py import_annotations`),
under the ownership rule, all or none."""

from collections import defaultdict
from collections.abc import Sequence

from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from labeling.errors import BatchInvalid, RowError
from labeling.models import CategoryAnnotation, Dataset, Item, Scene, Task
from labeling.selectors import taxonomies_by_name
from labeling.services.annotations import Answer, AnnotationSaved, answer_resolve, answers_save
from labeling.services.ownership import targets_claim_for_writing
from taxonomies.models import Taxonomy


def annotations_import(*, dataset: Dataset, rows: Sequence[dict], annotator, role: str) -> list[AnnotationSaved]:
    """Create or update finished annotations from `{"reference_id", "taxonomy_name", "label" |
    "labels", "metadata"}` rows, written by `annotator` with this `role` in the dataset: all of them,
    or (with every bad row named) none. The ownership rule decides each row (a labeler: the items
    they hold, or their own finished work; an admin: anything); one refused row refuses the batch
    (WriteRefused). A task whose required taxonomies are all answered then closes, as a submit
    closes it."""
    reference_ids = [row.get("reference_id") if isinstance(row, dict) else None for row in rows]
    targets = targets_by_reference_id(dataset=dataset, reference_ids=reference_ids)
    taxonomies = taxonomies_by_name(dataset=dataset)
    answers, errors, seen, indexes = [], [], set(), []
    for index, (row, reference_id) in enumerate(zip(rows, reference_ids)):
        if not isinstance(reference_id, str):  # a list or an object is no key (nor hashable)
            errors.append(RowError(index=index, field="reference_id", message="Give the reference_id (a string) of an item or scene."))
            continue
        target = targets.get(reference_id)
        if target is None:
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
        indexes.append(index)
    if errors:
        raise BatchInvalid(errors)
    by_target: dict[tuple[type, int], list[Answer]] = defaultdict(list)
    for answer in answers:
        by_target[(type(answer.target), answer.target.pk)].append(answer)
    with transaction.atomic():
        targets_claim_for_writing(targets=[(index, answer.target) for index, answer in zip(indexes, answers)], user=annotator, role=role)
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
        # A task waiting for its image's check is closed too: the work was done another way.
        closed += Task.objects.filter(**{f"{field}__in": ids}, state__in=[Task.State.OPEN, Task.State.WAITING]).update(
            state=Task.State.DONE, holder=None, lease_expires_at=None, done_by=user, done_at=timezone.now()
        )
    return closed
