"""Sending finished multi-label answers back to the queue for the classes added to their taxonomy since.

A multi-label answer records the classes its labeler was shown (`CategoryAnnotation.shown_label_ids`)
and is sent to Nucleus as True/False for those alone (`labeling.nucleus.annotation_payloads`). A
class added later is therefore unanswered on the older items: this asks for it, and only for it.
"""

from collections.abc import Sequence
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import transaction

from audit.models import AuditEvent
from audit.services import Change, audit_record
from labeling.models import CategoryAnnotation, Dataset, Task
from labeling.services.locks import answers_tasks_lock, taxonomy_labels_lock
from taxonomies.models import Taxonomy

# Ids per UPDATE ... WHERE id IN (...): under SQLite's limit on the parameters of one statement.
IDS_PER_STATEMENT = 500


@dataclass(frozen=True)
class NewClassesAsked:
    annotations: int  # answers sent back
    tasks_reopened: int  # their tasks that were done and are open again
    classes: list[str]  # the classes asked (of any of them), in the taxonomy's order


def taxonomy_ask_new_classes(*, taxonomy: Taxonomy, reference_ids: Sequence[str] | None = None) -> NewClassesAsked:
    """Send back to the queue every finished answer of this multi-label taxonomy whose labeler was
    not shown some of its current classes (or, with `reference_ids`, those of these items or
    scenes), asking just those classes.

    Each answer records the classes asked (`asked_label_ids`) and its task goes back to open with
    nobody holding it: the queue hands it out like any other open task, and the labeling page shows
    only the classes asked. The answer itself stays as it is, synced or not (nothing is sent again
    for this); the next finished answer adds the new classes' payloads and clears the ask
    (`answers_save`). Audited. Asking again what is already asked changes nothing, but reopens its
    task if something closed it meanwhile (an import answering another taxonomy of the item).

    Lock order (`labeling.services.locks`): the taxonomy's labels, then the answers' tasks (tasks
    before answers, as every write path), then the answers, in id order."""
    if not taxonomy.multi_label:
        raise ValidationError(
            {"taxonomy_name": f"“{taxonomy.taxonomy_name}” is single-label: its answers name one label each, and labels "
             "appended since change nothing for them."}
        )
    target = "item" if taxonomy.dataset.kind == Dataset.Kind.IMAGES else "scene"
    with transaction.atomic():
        # Locked: a class added meanwhile would otherwise be neither asked nor counted as shown.
        labels = taxonomy_labels_lock(taxonomy=taxonomy)
        current = {label.id for label in labels}
        # Only the answers on the dataset's queue targets: a frame of a scene has no task to reopen.
        answers = taxonomy.annotations.filter(status=CategoryAnnotation.Status.FINISHED, **{f"{target}__isnull": False})
        if reference_ids is not None:
            answers = answers.filter(**{f"{target}__reference_id__in": list(reference_ids)})
            _unknown_reference_ids_refuse(taxonomy=taxonomy, target=target, reference_ids=reference_ids)
        tasks = {getattr(task, f"{target}_id"): task for task in answers_tasks_lock(answers=answers)}
        locked = answers.select_for_update(of=("self",)).order_by("id")
        sent_back, target_ids, asked_ids = [], [], set()
        for annotation in locked.only("id", "item_id", "scene_id", "shown_label_ids", "asked_label_ids").iterator(chunk_size=2000):
            shown = current if annotation.shown_label_ids is None else set(annotation.shown_label_ids)
            asked = sorted((current - shown) | (set(annotation.asked_label_ids or ()) & current))
            # Every item and scene has a task: one not locked above was finished after that lock,
            # and reopening it now would lock it after its answer. The next ask finds it.
            if not asked or getattr(annotation, f"{target}_id") not in tasks:
                continue
            asked_ids.update(asked)
            # Asked before too: its task is reopened again if something closed it meanwhile (an import).
            target_ids.append(getattr(annotation, f"{target}_id"))
            if asked != annotation.asked_label_ids:
                annotation.asked_label_ids = asked
                sent_back.append(annotation)
        CategoryAnnotation.objects.bulk_update(sent_back, ["asked_label_ids"], batch_size=1000)
        done = [tasks[target_id].id for target_id in target_ids if tasks[target_id].state == Task.State.DONE]
        for start in range(0, len(done), IDS_PER_STATEMENT):
            Task.objects.filter(id__in=done[start : start + IDS_PER_STATEMENT]).update(
                state=Task.State.OPEN, holder=None, lease_expires_at=None, done_by=None, done_at=None
            )
        reopened = len(done)
        classes = [label.name for label in labels if label.id in asked_ids]
        if sent_back or reopened:
            audit_record(dataset_id=taxonomy.dataset_id, changes=[Change(
                action=AuditEvent.Action.ANNOTATION_ASK_NEW_CLASSES, target_type="taxonomy", target_id=taxonomy.pk,
                taxonomy_name=taxonomy.taxonomy_name,
                after={"classes": classes, "annotations": len(sent_back), "tasks_reopened": reopened},
            )])
    return NewClassesAsked(annotations=len(sent_back), tasks_reopened=reopened, classes=classes)


def _unknown_reference_ids_refuse(*, taxonomy: Taxonomy, target: str, reference_ids: Sequence[str]) -> None:
    model = Task._meta.get_field(target).related_model
    wanted = set(reference_ids)
    known = set(model.objects.filter(dataset_id=taxonomy.dataset_id, reference_id__in=wanted).values_list("reference_id", flat=True))
    unknown = sorted(wanted - known)
    if unknown:
        raise ValidationError({"reference_ids": "No " + target + " of this dataset has the reference_id " + ", ".join(f"“{ref}”" for ref in unknown[:10]) + "."})
