"""The labeling queue: next, submit and skip, shared by the browser and the API.

Guarantees:
- a task is held by at most one labeler at a time, under a lease that expires
  (`LABELING_LEASE_SECONDS`); an expired lease puts the task back in the queue;
- asking for the next task again returns the one the labeler already holds (and renews its lease);
- a skipped task goes to the end of that labeler's queue only;
- who may write an answer is `labeling.services.ownership`'s rule, carried in the WHERE of the
  submit's and the draft's statements.

A claim is one compare-and-set statement, `UPDATE ... WHERE id = (the held task, else the first
claimable one) AND it is still free`, run in autocommit: see `_claim_sql`. Both databases run the
same code.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from labeling.errors import BatchInvalid, RowError
from labeling.models import CategoryAnnotation, Dataset, Item, Scene, Task, TaskSkip
from labeling.services.annotations import AnnotationSaved, answer_resolve, answers_save
from labeling.selectors import taxonomies_by_name_cached
from labeling.services.ownership import HELD_BY_ANOTHER, Refusal, WriteRefused, write_refusal, writable_sql
from taxonomies.models import Taxonomy


@dataclass(frozen=True)
class TaskHeld:
    task: Task
    # Whether its item or scene had annotations (a draft, earlier work) when it was handed out: a
    # reader of its answers can skip the query when it had none.
    answered: bool


def task_next(*, dataset: Dataset, user) -> TaskHeld | None:
    """The task this labeler holds (lease renewed), else the next claimable one, else None.

    One statement, outside any transaction (see `_claim_sql`). It can come back empty while work is
    left in one case: the held task's lease ran out and another labeler took it between the
    statement's lookup and its compare-and-set. Asking once more then claims another task."""
    now = timezone.now()
    expires = now + timedelta(seconds=settings.LABELING_LEASE_SECONDS)
    for _attempt in range(2):
        task_id = _execute_returning_id(_claim_sql(), _claim_params(dataset_id=dataset.id, user_id=user.id, now=now, expires=expires))
        if task_id is not None:
            # Whether it has annotations comes with the task, not from the claim's RETURNING: SQLite
            # 3.40 answers a correlated subquery there for the wrong row.
            task = (
                Task.objects.select_related("item", "scene")
                .annotate(
                    answered=Exists(CategoryAnnotation.objects.filter(item_id=OuterRef("item_id")))
                    | Exists(CategoryAnnotation.objects.filter(scene_id=OuterRef("scene_id")))
                )
                .get(pk=task_id)
            )
            return TaskHeld(task=task, answered=task.answered)
    return None


def _claim_sql() -> str:
    """The claim: lease the task this labeler already holds, else the first free task they did not
    skip (queue order), else the free task they skipped longest ago. COALESCE evaluates its
    arguments in order and stops at the first non-null one, so a labeler who holds a task costs one
    index lookup and a claim never looks at skipped rows while unskipped ones are left.

    The outer condition is the compare-and-set: the row is still open and still free (or still
    this labeler's) when the UPDATE reaches it. On PostgreSQL the candidate lookups take `FOR UPDATE
    SKIP LOCKED`, so concurrent claimers step over each other's rows instead of queueing on them;
    SQLite has no row locks but runs one writer at a time, so the same statement is atomic there."""
    task, skip = _table(Task), _table(TaskSkip)
    lock = " FOR UPDATE OF t SKIP LOCKED" if connection.features.has_select_for_update_skip_locked else ""
    free = "t.dataset_id = %s AND t.state = 'open' AND (t.lease_expires_at IS NULL OR t.lease_expires_at < %s)"
    held = f"SELECT h.id FROM {task} h WHERE h.holder_id = %s AND h.dataset_id = %s AND h.state = 'open' AND h.lease_expires_at >= %s LIMIT 1"
    unskipped = (
        f"SELECT t.id FROM {task} t WHERE {free} "
        f"AND NOT EXISTS (SELECT 1 FROM {skip} s WHERE s.task_id = t.id AND s.user_id = %s) "
        f"ORDER BY t.id LIMIT 1{lock}"
    )
    skipped = (
        f"SELECT t.id FROM {task} t JOIN {skip} s ON s.task_id = t.id AND s.user_id = %s "
        f"WHERE {free} ORDER BY s.skipped_at, t.id LIMIT 1{lock}"
    )
    # SET reads the row's old values: a task taken from a holder whose lease ran out remembers them,
    # so their late write is a 409 (taken over), not a 403 (another labeler's work).
    return (
        f"UPDATE {task} SET holder_id = %s, lease_expires_at = %s, "
        f"previous_holder_id = CASE WHEN holder_id IS NOT NULL AND holder_id <> %s THEN holder_id ELSE previous_holder_id END "
        f"WHERE id = COALESCE(({held}), ({unskipped}), ({skipped})) "
        f"AND state = 'open' AND (holder_id = %s OR lease_expires_at IS NULL OR lease_expires_at < %s) "
        f"RETURNING id"
    )


def _claim_params(*, dataset_id: int, user_id: int, now, expires) -> list:
    now, expires = _db_datetime(now), _db_datetime(expires)
    return [
        user_id, expires, user_id,  # set, previous holder
        user_id, dataset_id, now,  # held
        dataset_id, now, user_id,  # unskipped
        user_id, dataset_id, now,  # skipped
        user_id, now,  # compare-and-set
    ]


def task_submit(*, dataset: Dataset, user, role: str, reference_id: str, rows: Sequence[dict]) -> list[AnnotationSaved]:
    """Store the answers of a writer with this `role` in the dataset for the item or scene with this
    reference_id as finished annotations and close its task, in one transaction. Every required
    taxonomy that applies must be answered. Who may write is `labeling.services.ownership`'s rule
    (a labeler: the task they hold, or their own finished work; an admin: anything); a refused
    submit raises WriteRefused and stores nothing.

    The dataset must have been read in this request (its taxonomies come from the per-process cache).
    Answers are checked before the database is touched; then one statement closes the task (with
    every condition above in its WHERE) and says whether the target has annotations already, so a
    first answer is stored with one INSERT."""
    target_model, target_column = (Item, "item_id") if dataset.kind == Dataset.Kind.IMAGES else (Scene, "scene_id")
    # The target's id is known once the task is closed; the checks need only its kind and dataset.
    target = target_model(dataset_id=dataset.id, reference_id=reference_id)
    taxonomies = taxonomies_by_name_cached(dataset=dataset)
    answers, errors = [], []
    for index, row in enumerate(rows):
        answer, row_errors = answer_resolve(taxonomies=taxonomies, target=target, row=row, index=index)
        errors.extend(row_errors)
        if answer is not None:
            answers.append(answer)
    # Names only: a row whose taxonomy_name is not a string is refused above, and a list would not hash.
    answered = [row.get("taxonomy_name") for row in rows if isinstance(row, dict) and isinstance(row.get("taxonomy_name"), str)]
    for name in sorted({name for name in answered if answered.count(name) > 1}):
        errors.append(RowError(index=None, field="annotations", message=f"“{name}” is answered more than once."))
    applies = Taxonomy.applies_to_items if target_model is Item else Taxonomy.applies_to_scenes
    for taxonomy in taxonomies.values():
        if taxonomy.required and applies(taxonomy) and taxonomy.taxonomy_name not in answered:
            errors.append(
                RowError(index=None, field=taxonomy.taxonomy_name, message=f"“{taxonomy.taxonomy_name}” is required: choose a label.")
            )
    if errors:
        # An unknown reference_id is the first thing to say; who may write is asked of valid answers only.
        task_for_reference_id(dataset=dataset, reference_id=reference_id)
        raise BatchInvalid(errors)
    now = timezone.now()
    task, annotation = _table(Task), _table(CategoryAnnotation)
    may_write, may_write_params = writable_sql(role=role, user_id=user.id, table=task)
    with transaction.atomic():
        with connection.cursor() as cursor:
            # "Has annotations" only picks the cheaper way to store the answers: SQLite 3.40 may
            # answer this correlated subquery for the wrong row (see task_next), and either answer
            # stores the same rows (an insert that finds an annotation falls back to comparing).
            cursor.execute(
                f"UPDATE {task} SET state = 'done', holder_id = NULL, lease_expires_at = NULL, done_by_id = %s, done_at = %s "
                f"WHERE {target_column} = (SELECT id FROM {_table(target_model)} WHERE dataset_id = %s AND reference_id = %s) "
                f"AND {may_write} "
                f"RETURNING {target_column}, EXISTS (SELECT 1 FROM {annotation} a WHERE a.{target_column} = {task}.{target_column})",
                [user.id, _db_datetime(now), dataset.id, reference_id, *may_write_params],
            )
            closed = cursor.fetchone()
        if closed is None:
            # Read again to say why; a row writable by now changed in between, and a 409 says try again.
            raise _submit_refusal(dataset=dataset, user=user, role=role, reference_id=reference_id) or WriteRefused(
                [(None, Refusal(409, HELD_BY_ANOTHER))]
            )
        target.pk, already_answered = closed
        return answers_save(target=target, answers=answers, annotator=user, finished=True, surely_new=not already_answered)


def _submit_refusal(*, dataset: Dataset, user, role: str, reference_id: str) -> WriteRefused | None:
    """What stops a submit other than its answers: an unknown reference_id (raised), or the
    ownership rule refusing this writer (returned)."""
    task = task_for_reference_id(dataset=dataset, reference_id=reference_id)
    refusal = write_refusal(task=task, role=role, user_id=user.id, now=timezone.now())
    return None if refusal is None else WriteRefused([(None, refusal)])


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


def _db_datetime(value):
    """A datetime as the ORM stores it (SQLite: naive UTC text, which compares correctly with the
    stored values; raw SQL would otherwise send it with a "+00:00" suffix)."""
    return connection.ops.adapt_datetimefield_value(value)


def _table(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _execute_returning_id(sql: str, params: list) -> int | None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return row[0] if row else None


def task_draft_save(*, dataset: Dataset, user, role: str, task: Task, rows: Sequence[dict]) -> list[AnnotationSaved]:
    """Keep a writer's unfinished answers for a task, so leaving mid-item loses nothing.

    Only valid answers are kept, and never over a finished annotation (going back to a finished
    item changes it by submitting). Who may write is the ownership rule, checked by a compare-and-set
    that also renews the writer's lease on a task they hold (claiming back one whose lease ran out
    with nobody claiming since): the task row stays locked until the draft is stored, so another
    labeler cannot claim it in between and get this labeler's draft."""
    now = timezone.now()
    expires = now + timedelta(seconds=settings.LABELING_LEASE_SECONDS)
    table = _table(Task)
    may_write, may_write_params = writable_sql(role=role, user_id=user.id, table=table)
    with transaction.atomic():
        held = _execute_returning_id(
            f"UPDATE {table} SET lease_expires_at = CASE WHEN state = 'open' AND holder_id = %s THEN %s ELSE lease_expires_at END "
            f"WHERE id = %s AND {may_write} RETURNING id",
            [user.id, _db_datetime(expires), task.id, *may_write_params],
        )
        if held is None:
            task.refresh_from_db(fields=["holder", "lease_expires_at", "state", "done_by", "previous_holder"])
            raise WriteRefused([(None, write_refusal(task=task, role=role, user_id=user.id, now=now) or Refusal(409, HELD_BY_ANOTHER))])
        taxonomies = taxonomies_by_name_cached(dataset=dataset)
        answers, cleared, errors = [], [], []
        for index, row in enumerate(rows):
            # `"labels": null` is a multi-label answer cleared (unanswered), unlike `[]` ("None of these"):
            # checked as an empty answer, then its draft is forgotten instead of stored.
            unanswered = isinstance(row, dict) and "labels" in row and row["labels"] is None
            checked = {**row, "labels": []} if unanswered else row
            answer, row_errors = answer_resolve(taxonomies=taxonomies, target=task.target, row=checked, index=index, draft=True)
            errors.extend(row_errors)
            if answer is not None:
                (cleared if unanswered else answers).append(answer)
        if errors:
            raise BatchInvalid(errors)
        finished = set(task.target.annotations.filter(status="finished").values_list("taxonomy_id", flat=True))
        task.target.annotations.filter(
            status=CategoryAnnotation.Status.DRAFT, taxonomy_id__in=[answer.taxonomy.id for answer in cleared]
        ).delete()
        return answers_save(
            target=task.target, answers=[a for a in answers if a.taxonomy.id not in finished], annotator=user, finished=False
        )