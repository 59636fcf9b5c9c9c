"""The labeling queue: next, submit and skip, shared by the browser and the API.

Guarantees:
- a task is held by at most one labeler at a time, under a lease that expires
  (`LABELING_LEASE_SECONDS`); an expired lease puts the task back in the queue;
- asking for the next task again returns the one the labeler already holds (and renews its lease);
- a skipped task goes to the end of that labeler's queue only.

A claim is one compare-and-set statement: `UPDATE ... WHERE id = (first claimable task) AND the
lease is still free`. On PostgreSQL the inner SELECT takes `FOR UPDATE SKIP LOCKED`, so concurrent
claimers step over each other's rows instead of queueing on them; SQLite has no row locks but runs
one writer at a time, so the same statement is atomic there. Both run the same code.
"""

from collections.abc import Sequence
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, transaction
from django.utils import timezone

from labeling.errors import BatchInvalid, RowError
from labeling.models import Dataset, Task, TaskSkip
from labeling.services.annotations import AnnotationSaved, answer_resolve, answers_save, taxonomies_by_name


class TaskHeldByAnotherLabeler(Exception):
    """The task is under another labeler's unexpired lease."""


def task_next(*, dataset: Dataset, user) -> Task | None:
    """The task this labeler holds (lease renewed), else the next claimable one, else None."""
    now = timezone.now()
    expires = now + timedelta(seconds=settings.LABELING_LEASE_SECONDS)
    with transaction.atomic():
        task_id = (
            _lease_renew(dataset_id=dataset.id, user_id=user.id, now=now, expires=expires)
            or _claim(dataset_id=dataset.id, user_id=user.id, now=now, expires=expires, among_skipped=False)
            or _claim(dataset_id=dataset.id, user_id=user.id, now=now, expires=expires, among_skipped=True)
        )
    if task_id is None:
        return None
    return Task.objects.select_related("item", "scene").get(pk=task_id)


def _lease_renew(*, dataset_id: int, user_id: int, now, expires) -> int | None:
    # A labeler holds at most one open task per dataset: they only claim when this finds nothing.
    return _execute_returning_id(
        f"UPDATE {_table(Task)} SET lease_expires_at = %s "
        f"WHERE holder_id = %s AND dataset_id = %s AND state = 'open' AND lease_expires_at >= %s RETURNING id",
        [expires, user_id, dataset_id, now],
    )


def _claim(*, dataset_id: int, user_id: int, now, expires, among_skipped: bool) -> int | None:
    """Take the first claimable task: not skipped by this labeler (in queue order), or, once those
    are gone, the ones this labeler skipped (oldest skip first)."""
    lock = " FOR UPDATE OF t SKIP LOCKED" if connection.features.has_select_for_update_skip_locked else ""
    if among_skipped:
        candidates = (
            f"SELECT t.id FROM {_table(Task)} t JOIN {_table(TaskSkip)} s ON s.task_id = t.id AND s.user_id = %s "
            f"WHERE t.dataset_id = %s AND t.state = 'open' AND (t.lease_expires_at IS NULL OR t.lease_expires_at < %s) "
            f"ORDER BY s.skipped_at, t.id LIMIT 1{lock}"
        )
    else:
        candidates = (
            f"SELECT t.id FROM {_table(Task)} t "
            f"WHERE t.dataset_id = %s AND t.state = 'open' AND (t.lease_expires_at IS NULL OR t.lease_expires_at < %s) "
            f"AND NOT EXISTS (SELECT 1 FROM {_table(TaskSkip)} s WHERE s.task_id = t.id AND s.user_id = %s) "
            f"ORDER BY t.id LIMIT 1{lock}"
        )
    candidate_params = [user_id, dataset_id, now] if among_skipped else [dataset_id, now, user_id]
    # The outer condition repeats the lease test: it is the compare-and-set that a concurrent claim
    # of the same row (possible on backends without SKIP LOCKED) would fail.
    return _execute_returning_id(
        f"UPDATE {_table(Task)} SET holder_id = %s, lease_expires_at = %s "
        f"WHERE id = ({candidates}) AND state = 'open' AND (lease_expires_at IS NULL OR lease_expires_at < %s) "
        f"RETURNING id",
        [user_id, expires, *candidate_params, now],
    )


def task_submit(
    *, dataset: Dataset, user, task: Task, rows: Sequence[dict], may_change_others_work: bool = False
) -> list[AnnotationSaved]:
    """Store the labeler's answers for a task as finished annotations and close the task, in one
    transaction. Every required taxonomy that applies must be answered. Submitting a task again
    (going back to change it) is allowed unless another labeler holds it now; a task another
    labeler finished can be changed only with `may_change_others_work` (dataset admins)."""
    if task.state == Task.State.DONE and task.done_by_id not in (None, user.id) and not may_change_others_work:
        raise PermissionDenied("Another labeler finished this; only an admin of the dataset can change it.")
    target = task.target
    taxonomies = taxonomies_by_name(dataset=dataset)
    answers, errors = [], []
    for index, row in enumerate(rows):
        answer, row_errors = answer_resolve(taxonomies=taxonomies, target=target, row=row, index=index)
        errors.extend(row_errors)
        if answer is not None:
            answers.append(answer)
    answered = [row.get("taxonomy_name") for row in rows if isinstance(row, dict)]
    for name in sorted({name for name in answered if answered.count(name) > 1}):
        errors.append(RowError(index=None, field="annotations", message=f"“{name}” is answered more than once."))
    applies = (lambda t: t.applies_to_scenes()) if task.scene_id else (lambda t: t.applies_to_items())
    for taxonomy in taxonomies.values():
        if taxonomy.required and applies(taxonomy) and taxonomy.taxonomy_name not in answered:
            errors.append(
                RowError(index=None, field=taxonomy.taxonomy_name, message=f"“{taxonomy.taxonomy_name}” is required: choose a label.")
            )
    if errors:
        raise BatchInvalid(errors)
    with transaction.atomic():
        closed = _execute_returning_id(
            f"UPDATE {_table(Task)} SET state = 'done', holder_id = NULL, lease_expires_at = NULL, done_by_id = %s, done_at = %s "
            f"WHERE id = %s AND (holder_id IS NULL OR holder_id = %s OR lease_expires_at < %s) RETURNING id",
            [user.id, timezone.now(), task.id, user.id, timezone.now()],
        )
        if closed is None:
            raise TaskHeldByAnotherLabeler()
        return answers_save(target=target, answers=answers, annotator=user, finished=True)


def task_skip(*, user, task: Task) -> None:
    """Release the labeler's lease on the task and send it to the end of their own queue."""
    now = timezone.now()
    with transaction.atomic():
        Task.objects.filter(pk=task.pk, holder=user).update(holder=None, lease_expires_at=None)
        TaskSkip.objects.update_or_create(task=task, user=user, defaults={"skipped_at": now})


def task_for_reference_id(*, dataset: Dataset, reference_id: str) -> Task:
    """The queue task of the dataset's item or scene with this reference_id."""
    target = "item" if dataset.kind == Dataset.Kind.IMAGES else "scene"
    # Filtering on the target's own dataset lets PostgreSQL use its (dataset, reference_id) index;
    # the task's dataset column alone left it scanning every item (59 ms at 1M items).
    lookup = {f"{target}__dataset": dataset, f"{target}__reference_id": reference_id}
    task = Task.objects.select_related("item", "scene").filter(dataset=dataset, **lookup).first()
    if task is None:
        raise ValidationError({"reference_id": f"No item or scene of this dataset has reference_id {reference_id!r}."})
    return task


def _table(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _execute_returning_id(sql: str, params: list) -> int | None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return row[0] if row else None


def task_draft_save(*, dataset: Dataset, user, task: Task, rows: Sequence[dict]) -> list[AnnotationSaved]:
    """Keep a labeler's unfinished answers for a task they hold, so leaving mid-item loses nothing.

    Only valid answers are kept, and never over a finished annotation (going back to a finished
    item changes it by submitting). Requires holding the task's lease."""
    if task.holder_id is not None and task.holder_id != user.id:
        raise TaskHeldByAnotherLabeler()
    if task.holder_id is None:
        raise ValidationError({"reference_id": "Take the task with next before saving a draft of it."})
    taxonomies = taxonomies_by_name(dataset=dataset)
    answers, errors = [], []
    for index, row in enumerate(rows):
        answer, row_errors = answer_resolve(taxonomies=taxonomies, target=task.target, row=row, index=index, draft=True)
        errors.extend(row_errors)
        if answer is not None:
            answers.append(answer)
    if errors:
        raise BatchInvalid(errors)
    finished = set(
        task.target.annotations.filter(status="finished").values_list("taxonomy_id", flat=True)
    )
    return answers_save(
        target=task.target, answers=[a for a in answers if a.taxonomy.id not in finished], annotator=user, finished=False
    )
