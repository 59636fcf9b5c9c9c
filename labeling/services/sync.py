"""The sync to Nucleus: every finished annotation arrives there as the SDK would build it, through faults.

**The outbox is the truth.** Saving a finished annotation bumps its `version` and sets `sync_state`
to pending in the same transaction (`labeling.services.annotations`), then `sync_enqueue_on_commit`
publishes `labeling.sync_dataset` after the commit. A lost message, a broker outage or a dead worker
only delays the sync: `sync_sweep` (run by `celery beat`) re-enqueues every dataset with annotations
that are pending and due.

**One batch, one sender.** A worker claims a batch with one compare-and-set UPDATE that stamps a
token and a lease (`sync_claim`, `sync_claimed_until`) on pending rows nobody holds, stepping over
rows another claimer has locked (`FOR UPDATE SKIP LOCKED` on PostgreSQL; SQLite runs one writer at a
time, so the same statement is atomic there). It reads the rows with their `version`, leaves the
database (no transaction is open while it talks to Nucleus), makes sure their taxonomies exist on
Nucleus, sends ONE annotate request (`update=True`, so sending twice is harmless) and reconciles
with UPDATEs conditioned on its token and on the version it sent: an annotation relabelled while in
flight stays pending and goes again; one whose taxonomy was rebuilt meanwhile lost the token and
goes again. A worker that dies leaves its lease to expire; the batch is then claimed and sent again.

**Reading the answer.** Nucleus answers HTTP 200 even when annotations fail, with `errors` (strings)
and counts. An error that names an annotation's reference_id and taxonomy_name marks that
annotation failed with the message (re-sending the same content would fail the same way). The others
are marked synced only when the counts account for every payload; otherwise nobody can tell which
of them Nucleus kept, so they are retried like a fault (re-sending is idempotent) and, after
`NUCLEUS_SYNC_MAX_ATTEMPTS`, marked failed. 429, 5xx, timeouts and broken connections schedule a
retry (`sync_next_attempt_at`, exponential backoff with equal jitter, at least what `Retry-After`
asks), each annotation after its own attempts; other refusals (401, 404, ...) mark failed at once,
with Nucleus's message, the batch or, when a taxonomy call was refused, that taxonomy's annotations.

**Taxonomy rebuilds owe before they delete.** A rebuild first records, in one transaction, the
names Nucleus must delete (`NucleusTaxonomyDeletion` tombstones), forgets the taxonomy's snapshot and
puts its finished annotations back in the outbox; only then does it delete and create on Nucleus.
A rebuild stopped anywhere is finished by a later sync, whatever changed here meanwhile.

**A relink wins.** Snapshots (taxonomies sent, items appended) are written under the dataset's row
lock and only while it is still linked to the Nucleus dataset they are about, and a run claims
nothing once the link changed (`dataset_nucleus_link_hold`, `_claim`).
"""

import json
import logging
import random
import re
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Case, Count, F, Q, Value, When
from django.utils import timezone

from labeling import nucleus
from labeling.models import CategoryAnnotation, Dataset, Item, NucleusTaxonomyDeletion, Scene
from taxonomies.models import MULTI_LABEL_SEPARATOR, Label, Taxonomy

logger = logging.getLogger(__name__)
State = CategoryAnnotation.SyncState
# Far enough ahead to count every pending annotation as due (`dataset_sync(include_waiting=True)`).
EVERYTHING_DUE = datetime(9999, 1, 1, tzinfo=UTC)
# A run reports this many of Nucleus's error messages (each failed annotation keeps its own).
REPORTED_ERRORS = 100
# Rows per UPDATE that sets a message per row (a CASE with one branch and two parameters per row).
MESSAGES_PER_UPDATE = 500


# --- What the sync page and the admin read -----------------------------------------------------


NO_API_KEY = "NUCLEUS_API_KEY is not set on the server: annotations wait as pending until it is."


def sync_blocker(*, dataset: Dataset) -> str | None:
    """Why this dataset's annotations cannot be sent now, in words for its admin; None if they can."""
    if not settings.NUCLEUS_API_KEY:
        return NO_API_KEY
    if not dataset.nucleus_dataset_id:
        return "This dataset is not linked to a Nucleus dataset (nucleus_dataset_id): annotations wait as pending."
    return None


def sync_counts(*, dataset: Dataset) -> dict[str, int]:
    """How many of the dataset's annotations are in each sync state (every state present, 0 if none):
    `not_ready` (drafts), `pending`, `synced`, `failed`."""
    counts = dict.fromkeys(State.values, 0)
    for row in dataset.annotations.values("sync_state").annotate(n=Count("id")).order_by():
        counts[row["sync_state"]] = row["n"]
    return counts


@dataclass(frozen=True)
class SyncFailure:
    annotation_id: int
    reference_id: str
    taxonomy_name: str
    error: str
    attempts: int


def sync_failures(*, dataset: Dataset, limit: int = 100) -> list[SyncFailure]:
    """The dataset's failed annotations with Nucleus's last error, most recently changed first."""
    rows = (
        dataset.annotations.filter(sync_state=State.FAILED)
        .select_related("item", "scene", "taxonomy")
        .order_by("-updated_at", "-id")[:limit]
    )
    return [
        SyncFailure(
            annotation_id=row.id,
            reference_id=row.reference_id,
            taxonomy_name=row.taxonomy.taxonomy_name,
            error=row.sync_error,
            attempts=row.sync_attempts,
        )
        for row in rows
    ]


def sync_retry_failed(*, dataset: Dataset) -> int:
    """Put the dataset's failed annotations back in the outbox (pending, attempts reset) and enqueue
    a sync after the commit; returns how many."""
    with transaction.atomic():
        retried = dataset.annotations.filter(sync_state=State.FAILED).update(
            sync_state=State.PENDING, sync_attempts=0, sync_next_attempt_at=None, sync_error=""
        )
        if retried:
            sync_enqueue_on_commit(dataset_id=dataset.id)
    return retried


@dataclass(frozen=True)
class TaxonomyPlan:
    """What Nucleus must be told before annotations of a taxonomy are sent."""

    deletes: list[str]
    adds: list[tuple[str, list[str]]]
    rebuild: bool  # Nucleus deletes a taxonomy's annotations with it: they must all be sent again
    labels: list[str]  # the labels Nucleus will have been given (the new `nucleus_labels`)
    taxonomy_name: str  # the name Nucleus will have it under (the new `nucleus_taxonomy_name`)
    renamed_from: str = ""

    def describe(self) -> list[str]:
        lines = [f"renamed from {self.renamed_from}: Nucleus keeps its annotations under that name"] if self.renamed_from else []
        lines += [f"delete taxonomy {name} on Nucleus (and its annotations there)" for name in self.deletes]
        lines += [f"create or update taxonomy {name} with labels {labels}" for name, labels in self.adds]
        if self.rebuild:
            lines.append("then send every finished annotation of it again")
        return lines


def taxonomy_nucleus_plan(taxonomy: Taxonomy) -> TaxonomyPlan | None:
    """Compare what Nucleus was last given (`nucleus_labels` under `nucleus_taxonomy_name`) with the
    current labels and name; None when Nucleus is up to date. Uses the taxonomy's prefetched labels
    when it has them.

    A multi-label taxonomy lives on Nucleus as one True/False taxonomy per label. A renamed taxonomy
    is deleted there under its old name(s) and created under the new one(s)."""
    current = taxonomy.label_names()
    removed = taxonomy.nucleus_labels_removed(current)
    added = taxonomy.nucleus_labels_added(current)
    renamed_from = taxonomy.nucleus_renamed_from()
    if taxonomy.nucleus_labels is not None and not removed and not added and not renamed_from:
        return None
    name = taxonomy.taxonomy_name
    if renamed_from:
        deletes = nucleus_taxonomy_names(renamed_from, taxonomy.multi_label, taxonomy.nucleus_labels)
        added = current
    elif taxonomy.multi_label:
        deletes = [nucleus.binary_taxonomy_name(name, label) for label in removed]
    else:
        deletes = [name] if removed else []
    if taxonomy.multi_label:
        adds = [(nucleus.binary_taxonomy_name(name, label), nucleus.BINARY_LABELS) for label in added]
    else:
        adds = [(name, current)]
    return TaxonomyPlan(
        deletes=deletes, adds=adds, rebuild=bool(removed or renamed_from), labels=current, taxonomy_name=name, renamed_from=renamed_from
    )


def nucleus_taxonomy_names(taxonomy_name: str, multi_label: bool, labels: Iterable[str]) -> list[str]:
    """The taxonomies Nucleus has for one of ours: itself, or one True/False taxonomy per label."""
    if multi_label:
        return [nucleus.binary_taxonomy_name(taxonomy_name, label) for label in labels]
    return [taxonomy_name]


def sync_taxonomy_renames(*, dataset: Dataset) -> dict[str, str]:
    """{taxonomy_name: the name Nucleus has it under} of the dataset's taxonomies renamed since they
    were sent (one query)."""
    taxonomies = Taxonomy.objects.filter(dataset=dataset, nucleus_labels__isnull=False).exclude(nucleus_taxonomy_name="")
    return {
        taxonomy.taxonomy_name: taxonomy.nucleus_taxonomy_name
        for taxonomy in taxonomies.exclude(nucleus_taxonomy_name=F("taxonomy_name")).only("taxonomy_name", "nucleus_taxonomy_name")
    }


# --- Changes that Nucleus must hear of without an annotation changing --------------------------


def nucleus_taxonomy_deletion_record(*, taxonomy: Taxonomy) -> None:
    """Remember that this taxonomy, about to be deleted here, must be deleted on the linked Nucleus
    dataset (with its annotations there): every name it may have there, under its snapshot and its
    current name and labels (a sync in flight may be creating those). Call it in the transaction
    that deletes the taxonomy, before the delete; the sync sends the deletes after the commit."""
    if not taxonomy.dataset.nucleus_dataset_id:
        return
    current = taxonomy.label_names()
    names = set(nucleus_taxonomy_names(taxonomy.taxonomy_name, taxonomy.multi_label, current))
    if taxonomy.nucleus_labels is not None:
        sent_as = taxonomy.nucleus_taxonomy_name or taxonomy.taxonomy_name
        names |= set(nucleus_taxonomy_names(sent_as, taxonomy.multi_label, taxonomy.nucleus_labels))
    _taxonomy_deletions_owe(dataset_id=taxonomy.dataset_id, taxonomy_names=names)
    sync_enqueue_on_commit(dataset_id=taxonomy.dataset_id)


def _taxonomy_deletions_owe(*, dataset_id: int, taxonomy_names: Iterable[str]) -> None:
    """Record tombstones: these names must be deleted on the linked Nucleus dataset."""
    now = timezone.now()
    # A name owed again before the sync ran gets a new created_at: the sync then keeps the row if it
    # had read the old one (see `_taxonomy_deletions_apply`).
    NucleusTaxonomyDeletion.objects.bulk_create(
        [NucleusTaxonomyDeletion(dataset_id=dataset_id, taxonomy_name=name, created_at=now) for name in sorted(set(taxonomy_names))],
        update_conflicts=True, unique_fields=["dataset", "taxonomy_name"], update_fields=["created_at"],
    )


def dataset_nucleus_link_hold(*, dataset_id: int, nucleus_dataset_id: str) -> bool:
    """Whether the dataset is still linked to `nucleus_dataset_id`, holding its row lock until the
    caller's transaction ends (call it inside `atomic()`). A link change saves the dataset row before
    it forgets the snapshots (`dataset_update`, the admin): it waits for the caller to commit, and a
    caller that comes after it sees the new link. So a worker talking to the old Nucleus dataset never
    writes a snapshot (taxonomy sent, item appended, deletion owed) after the link change forgot them."""
    return Dataset.objects.select_for_update().filter(pk=dataset_id, nucleus_dataset_id=nucleus_dataset_id).exists()


def sync_nucleus_link_changed(*, dataset: Dataset) -> int:
    """The dataset now syncs to another Nucleus dataset (or to none): nothing of what the old one has
    counts. Forget every snapshot (taxonomies sent, items appended, taxonomies to delete there) and
    put every finished annotation back in the outbox; returns how many. Call it in the transaction
    that changes the link, after saving the dataset row: a batch in flight loses its claim and cannot
    be marked synced, and its worker writes no snapshot of the old dataset after this one
    (`dataset_nucleus_link_hold`)."""
    Taxonomy.objects.filter(dataset=dataset).update(nucleus_labels=None, nucleus_taxonomy_name="")
    NucleusTaxonomyDeletion.objects.filter(dataset=dataset).delete()
    for model in (Item, Scene):
        model.objects.filter(dataset=dataset, nucleus_uploaded_at__isnull=False).update(nucleus_uploaded_at=None)
    resent = _send_again(dataset.annotations.filter(status=CategoryAnnotation.Status.FINISHED))
    sync_enqueue_on_commit(dataset_id=dataset.id)
    return resent


def _send_again(annotations) -> int:
    """Put these annotations back in the outbox as never sent, taking them from any batch in flight."""
    return annotations.update(
        sync_state=State.PENDING, synced_version=0, sync_attempts=0, sync_next_attempt_at=None,
        sync_error="", sync_claim=None, sync_claimed_until=None,
    )


# --- Enqueueing ---------------------------------------------------------------------------------


class _EnqueueAfterCommit:
    """An on_commit callback that remembers its dataset, so one transaction enqueues it once."""

    def __init__(self, dataset_id: int):
        self.dataset_id = dataset_id

    def __call__(self) -> None:
        gather = settings.NUCLEUS_SYNC_GATHER_SECONDS
        if settings.CELERY_TASK_ALWAYS_EAGER or not gather:
            sync_enqueue(dataset_id=self.dataset_id)
            return
        # Labelers submit several answers a second: a sync published for the first one, starting
        # `gather` seconds later, carries the ones committed in the first half of that wait too (the
        # half leaves room for clocks that differ between this process and the worker's).
        now = time.monotonic()
        if _sync_published_until.get(self.dataset_id, 0.0) > now:
            return
        if sync_enqueue(dataset_id=self.dataset_id, countdown=gather):
            _sync_published_until[self.dataset_id] = now + gather / 2


# Per process: dataset id -> until when (time.monotonic) a published sync covers its new answers.
_sync_published_until: dict[int, float] = {}


def sync_enqueue_on_commit(*, dataset_id: int) -> None:
    """Enqueue a sync of the dataset once the current transaction commits (now, outside one).

    Called by every write that puts annotations in the outbox. Costs nothing without an API key in
    eager mode, where the sync would run in this very process and do nothing."""
    if settings.CELERY_TASK_ALWAYS_EAGER and not settings.NUCLEUS_API_KEY:
        return
    # An import of 10,000 items saves answers 10,000 times in one transaction: publish once.
    # (`run_on_commit` holds (savepoint ids, callback, robust) for the open transaction.)
    if any(getattr(entry[1], "dataset_id", None) == dataset_id for entry in connection.run_on_commit):
        return
    transaction.on_commit(_EnqueueAfterCommit(dataset_id))


def sync_enqueue(*, dataset_id: int, include_waiting: bool = False, countdown: int = 0) -> bool:
    """Publish `labeling.sync_dataset`, to start now or `countdown` seconds from now. A broker that
    is down is logged and swallowed: the annotations are safe in the outbox, and the sweep enqueues
    them once the broker is back.

    `include_waiting` (a person pressed "Sync now") also sends annotations whose retry is not due yet."""
    from labeling.tasks import sync_dataset

    try:
        # No publish retries: the caller is a web request that has already committed.
        kwargs = {"include_waiting": True} if include_waiting else {}
        sync_dataset.apply_async(args=[dataset_id], kwargs=kwargs, retry=False, countdown=countdown or None)
    except Exception:
        # Whatever failed (the broker, or in eager mode the sync itself), the request that
        # committed the annotations must not fail because of it; the sweep comes back for them.
        logger.exception("Could not start the Nucleus sync of dataset %s; the sweep will retry it.", dataset_id)
        return False
    return True


def sync_sweep() -> list[int]:
    """Enqueue a sync of every dataset with annotations pending and due (a lost message, a retry
    whose time has come, a claim whose worker died); returns the dataset ids."""
    if not settings.NUCLEUS_API_KEY:
        return []
    now = timezone.now()
    due = CategoryAnnotation.objects.filter(_due(now, now)).values_list("dataset_id", flat=True).order_by()
    # Taxonomies deleted here that Nucleus still has: no annotation is left to bring a sync to them.
    # Only young ones: a delete Nucleus refuses keeps its tombstone, which would otherwise bring the
    # dataset back every sweep forever (a tombstone has no attempt count to back off with). An older
    # one waits for a sync started for another reason (an answer, "Sync now", the command).
    young = now - timedelta(seconds=settings.NUCLEUS_SYNC_BACKOFF_MAX_SECONDS)
    deletions = NucleusTaxonomyDeletion.objects.filter(created_at__gte=young).values_list("dataset_id", flat=True).order_by()
    dataset_ids = sorted(set(due.union(deletions)) | {taxonomy.dataset_id for taxonomy in _taxonomies_out_of_date()})
    for dataset_id in dataset_ids:
        sync_enqueue(dataset_id=dataset_id)
    return dataset_ids


def _taxonomies_out_of_date(dataset: Dataset | None = None) -> list[Taxonomy]:
    """Taxonomies Nucleus has, whose labels were added, renamed or removed, or which were renamed
    themselves, since (2 queries).

    A rename or removal changes no annotation, so nothing else would bring the sync to them."""
    taxonomies = Taxonomy.objects.filter(nucleus_labels__isnull=False).prefetch_related("labels")
    if dataset is not None:
        taxonomies = taxonomies.filter(dataset=dataset)
    return [taxonomy for taxonomy in taxonomies if taxonomy_nucleus_plan(taxonomy) is not None]


def _due(now: datetime, due_before: datetime) -> Q:
    return (
        Q(sync_state=State.PENDING)
        & (Q(sync_next_attempt_at__isnull=True) | Q(sync_next_attempt_at__lte=due_before))
        & (Q(sync_claimed_until__isnull=True) | Q(sync_claimed_until__lt=now))
    )


def _target_not_on_nucleus() -> Q:
    """Annotations of an item or a scene not appended to Nucleus yet. A frame is there when its scene
    is (a scene is appended with its frames; frames are not marked themselves)."""
    item_missing = Q(item__isnull=False, item__nucleus_uploaded_at__isnull=True, item__scene__nucleus_uploaded_at__isnull=True)
    return item_missing | Q(scene__isnull=False, scene__nucleus_uploaded_at__isnull=True)


def sync_waiting_for_items(*, dataset: Dataset) -> int:
    """How many pending annotations a sync that appends items first (`nucleus_push_items`, or
    `sync_nucleus --push-items`) keeps back until their item or scene is on Nucleus."""
    return dataset.annotations.filter(_target_not_on_nucleus(), sync_state=State.PENDING).count()


# --- Running a sync -----------------------------------------------------------------------------


@dataclass
class SyncReport:
    """What one run did. `annotations` counts annotations sent (or tried), `payloads` what went over
    the wire (a multi-label annotation is one payload per label)."""

    blocked: str | None = None
    batches: int = 0
    annotations: int = 0
    payloads: int = 0
    synced: int = 0
    failed: int = 0
    retrying: int = 0
    items_appended: int = 0  # items or scenes appended to Nucleus first (`push_items`)
    more: bool = False  # stopped by its deadline with annotations still due
    errors: list[str] = field(default_factory=list)  # the first REPORTED_ERRORS of Nucleus's messages

    def add(self, outcome: "BatchOutcome") -> None:
        self.batches += 1
        for name in ("annotations", "payloads", "synced", "failed", "retrying"):
            setattr(self, name, getattr(self, name) + getattr(outcome, name))
        self.errors.extend(outcome.errors[: REPORTED_ERRORS - len(self.errors)])

    def as_dict(self) -> dict:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def sync_run(*, dataset_id: int, time_budget: float | None = None, include_waiting: bool = False) -> SyncReport:
    """The task's body: sync the dataset for at most `time_budget` seconds of new batches, and hand
    what is left to a new task. Makes no query without an API key."""
    if not settings.NUCLEUS_API_KEY:
        return SyncReport(blocked=NO_API_KEY)
    dataset = Dataset.objects.filter(pk=dataset_id).first()
    if dataset is None:
        return SyncReport(blocked=f"Dataset {dataset_id} does not exist.")
    deadline = None if time_budget is None else time.monotonic() + time_budget
    report = dataset_sync(dataset=dataset, deadline=deadline, include_waiting=include_waiting)
    if report.more:
        sync_enqueue(dataset_id=dataset_id, include_waiting=include_waiting)
    return report


def dataset_sync(
    *,
    dataset: Dataset,
    deadline: float | None = None,
    include_waiting: bool = False,
    push_items: bool | None = None,
    on_batch: Callable[["BatchOutcome"], None] | None = None,
) -> SyncReport:
    """Send the dataset's due pending annotations to Nucleus, batch after batch, until none is left,
    a fault says to wait, or `deadline` (a `time.monotonic()` value) passes.

    `include_waiting` also sends annotations whose retry is scheduled later (a person asked for a
    sync now). `push_items` (default: the dataset's `nucleus_push_items`) first appends the items or
    scenes Nucleus does not have, and sends only annotations whose item or scene it has: the others
    stay pending until a later sync has appended theirs. Safe to run in several processes at once:
    each batch is claimed by one of them."""
    blocker = sync_blocker(dataset=dataset)
    if blocker:
        return SyncReport(blocked=blocker)
    report = SyncReport()
    push_items = dataset.nucleus_push_items if push_items is None else push_items
    if push_items:
        _items_push(dataset=dataset, report=report)
    limit = _annotations_per_batch(dataset)
    token = uuid.uuid4().hex
    with nucleus.remote_dataset(dataset.nucleus_dataset_id) as remote:
        try:
            refusals = _taxonomy_deletions_apply(remote=remote, dataset_id=dataset.id)
            # Rebuilds first: they put the taxonomy's annotations back in the outbox for this run.
            refusals += _taxonomies_ensure(remote=remote, taxonomies=_taxonomies_out_of_date(dataset), token=token).values()
        except nucleus.NucleusUnavailable as fault:
            logger.warning("Could not update taxonomies of dataset %s on Nucleus: %s", dataset.id, fault.message)
            report.errors.append(fault.message)
            return report
        for refusal in refusals:
            logger.warning("Nucleus refused a taxonomy change of dataset %s: %s", dataset.id, refusal)
        report.errors.extend(refusals[:REPORTED_ERRORS])
        while True:
            if deadline is not None and time.monotonic() >= deadline:
                due = CategoryAnnotation.objects.filter(_due(timezone.now(), timezone.now()), dataset=dataset)
                report.more = (due.exclude(_target_not_on_nucleus()) if push_items else due).exists()
                break
            outcome = _batch_sync(
                dataset=dataset, remote=remote, token=token, limit=limit, include_waiting=include_waiting, on_nucleus_only=push_items
            )
            if outcome is None:
                break
            report.add(outcome)
            if on_batch is not None:
                on_batch(outcome)
            if outcome.fault:
                break  # Nucleus asked to wait (or is down): the next sweep comes back
    return report


def _items_push(*, dataset: Dataset, report: "SyncReport") -> None:
    # nucleus_items builds on this module (it reads sync_blocker), hence the import here.
    from labeling.services.nucleus_items import nucleus_items_push

    pushed = nucleus_items_push(dataset=dataset)
    report.items_appended = pushed.uploaded
    problems = [pushed.blocked] if pushed.blocked else pushed.errors
    report.errors.extend(f"Appending items to Nucleus: {problem}" for problem in problems[:REPORTED_ERRORS])


def dataset_sync_preview(*, dataset: Dataset) -> tuple[list[str], Iterator[dict]]:
    """What a sync would do, changing nothing: the taxonomy changes it would make first (as
    sentences) and the payloads of every pending annotation, in order."""
    plans = [
        f"delete taxonomy {name} on Nucleus (deleted here)"
        for name in dataset.nucleus_taxonomy_deletions.order_by("taxonomy_name").values_list("taxonomy_name", flat=True)
    ] + [
        line
        for taxonomy in dataset.taxonomies.prefetch_related("labels")
        for plan in [taxonomy_nucleus_plan(taxonomy)]
        if plan is not None
        for line in [f"{taxonomy.taxonomy_name}: {step}" for step in plan.describe()]
    ]

    def payloads() -> Iterator[dict]:
        after = 0
        while True:
            chunk = list(_with_content(dataset.annotations.filter(sync_state=State.PENDING, id__gt=after).order_by("id"))[:1000])
            if not chunk:
                return
            for annotation in chunk:
                yield from nucleus.annotation_payloads(annotation)
            after = chunk[-1].id

    return plans, payloads()


def dataset_pending_count(*, dataset: Dataset) -> int:
    return dataset.annotations.filter(sync_state=State.PENDING).count()


# --- One batch ----------------------------------------------------------------------------------


@dataclass
class BatchOutcome:
    annotations: int = 0
    payloads: int = 0
    synced: int = 0
    failed: int = 0
    retrying: int = 0
    fault: bool = False
    errors: list[str] = field(default_factory=list)

    def merge(self, other: "BatchOutcome") -> None:
        for name in ("annotations", "payloads", "synced", "failed", "retrying"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.fault = self.fault or other.fault
        self.errors.extend(other.errors)


def _annotations_per_batch(dataset: Dataset) -> int:
    """Annotations per claim so that one request carries at most NUCLEUS_BATCH_SIZE payloads: a
    multi-label annotation is one payload per label, so the widest taxonomy sets the pace."""
    widest = max(
        Label.objects.filter(taxonomy__dataset=dataset, taxonomy__multi_label=True)
        .values("taxonomy")
        .annotate(n=Count("id"))
        .order_by()
        .values_list("n", flat=True),
        default=1,
    )
    return max(1, settings.NUCLEUS_BATCH_SIZE // max(1, widest))


def _batch_sync(
    *, dataset: Dataset, remote: nucleus.RemoteDataset, token: str, limit: int, include_waiting: bool, on_nucleus_only: bool
) -> BatchOutcome | None:
    now = timezone.now()
    due_before = EVERYTHING_DUE if include_waiting else now
    ids = _claim(
        dataset_id=dataset.id, nucleus_dataset_id=remote.dataset_id, token=token, limit=limit, now=now, due_before=due_before,
        on_nucleus_only=on_nucleus_only,
    )
    if not ids:
        return None
    annotations = list(_with_content(CategoryAnnotation.objects.filter(id__in=ids, sync_claim=token)))
    if not annotations:  # a taxonomy rebuild took them back between the claim and the read
        return BatchOutcome()
    built, unbuildable = _build(annotations)
    # Never sent: an annotation whose payloads cannot be built would otherwise be claimed again and again.
    outcome = BatchOutcome(annotations=len(unbuildable), errors=[message for _, message in unbuildable])
    outcome.failed = _mark_failed(unbuildable, token=token)
    if built:
        outcome.merge(_send(remote=remote, built=built, token=token))
    _release(token)
    return outcome


def _send(*, remote: nucleus.RemoteDataset, built: list[tuple[CategoryAnnotation, list]], token: str) -> BatchOutcome:
    """Taxonomies first, then one annotate request; the claimed rows updated with the outcome. The
    annotations of a taxonomy Nucleus refuses fail with its message; the rest of the batch goes."""
    annotations = [annotation for annotation, _ in built]
    try:
        refused = _taxonomies_ensure(remote=remote, taxonomies={a.taxonomy_id: a.taxonomy for a in annotations}.values(), token=token)
    except nucleus.NucleusUnavailable as fault:
        return _retry_later(annotations=annotations, token=token, message=fault.message, retry_after=fault.retry_after)
    rejected = [(annotation, refused[annotation.taxonomy_id]) for annotation, _ in built if annotation.taxonomy_id in refused]
    outcome = BatchOutcome(annotations=len(rejected), errors=list(dict.fromkeys(refused.values())))
    outcome.failed = _mark_failed(rejected, token=token)
    sendable = [(annotation, payloads) for annotation, payloads in built if annotation.taxonomy_id not in refused]
    if sendable:
        outcome.merge(_annotate(remote=remote, built=sendable, token=token))
    return outcome


def _annotate(*, remote: nucleus.RemoteDataset, built: list[tuple[CategoryAnnotation, list]], token: str) -> BatchOutcome:
    annotations = [annotation for annotation, _ in built]
    # The annotate request gets a full lease of its own, whatever the taxonomy calls took.
    _claim_renew(token=token)
    try:
        answer = remote.annotate([payload for _, payloads in built for payload in payloads])
    except nucleus.NucleusUnavailable as fault:
        return _retry_later(annotations=annotations, token=token, message=fault.message, retry_after=fault.retry_after)
    except nucleus.NucleusRefused as refusal:
        failed = _mark(annotations, token=token, sync_state=State.FAILED, sync_error=refusal.message, sync_attempts=F("sync_attempts") + 1)
        return BatchOutcome(annotations=len(annotations), failed=failed, errors=[refusal.message])
    return _reconcile(built=built, answer=answer, token=token)


def _build(annotations: list[CategoryAnnotation]) -> tuple[list[tuple[CategoryAnnotation, list]], list[tuple[CategoryAnnotation, str]]]:
    """The payloads of each annotation (`nucleus.annotation_payloads`, as export and --dry-run build
    them), and the annotations whose payloads cannot be built (with why)."""
    built, unbuildable = [], []
    for annotation in annotations:
        try:
            built.append((annotation, nucleus.annotation_payloads(annotation)))
        except (ValueError, TypeError, AttributeError) as error:
            unbuildable.append((annotation, f"Could not build the Nucleus annotation: {type(error).__name__}: {error}"))
    return built, unbuildable


def _claim(
    *, dataset_id: int, nucleus_dataset_id: str, token: str, limit: int, now: datetime, due_before: datetime, on_nucleus_only: bool = False
) -> list[int]:
    """Stamp our token and a lease on up to `limit` due pending annotations nobody holds, in id
    order; the ids we won. The outer WHERE repeats the test: it is the compare-and-set that a
    concurrent claim of the same row (possible without SKIP LOCKED) fails. `on_nucleus_only` skips
    annotations whose item or scene is not on Nucleus yet (`_target_not_on_nucleus`, in SQL).
    Nothing is claimed once the dataset is linked to another Nucleus dataset than
    `nucleus_dataset_id`, the one the caller sends to: the link change put every annotation back in
    the outbox for the new one, and a run started before it must not send them to the old one.

    The candidates are a CTE, not an `IN (SELECT ... LIMIT n)`: PostgreSQL may run such a subquery
    more than once per UPDATE, claiming more than `limit` rows; a CTE that locks rows runs once."""
    table = connection.ops.quote_name(CategoryAnnotation._meta.db_table)
    lock = " FOR UPDATE SKIP LOCKED" if connection.features.has_select_for_update_skip_locked else ""
    adapt = connection.ops.adapt_datetimefield_value
    free = "sync_state = 'pending' AND (sync_claimed_until IS NULL OR sync_claimed_until < %s)"
    on_nucleus = _ON_NUCLEUS_SQL.format(annotation=table, item=_table(Item), scene=_table(Scene)) if on_nucleus_only else ""
    sql = (
        f"WITH candidates AS (SELECT id FROM {table} WHERE dataset_id = %s AND {free} "
        f"AND EXISTS (SELECT 1 FROM {_table(Dataset)} d WHERE d.id = %s AND d.nucleus_dataset_id = %s) "
        f"AND (sync_next_attempt_at IS NULL OR sync_next_attempt_at <= %s){on_nucleus} ORDER BY id LIMIT %s{lock}) "
        f"UPDATE {table} SET sync_claim = %s, sync_claimed_until = %s "
        f"WHERE id IN (SELECT id FROM candidates) AND {free} RETURNING id"
    )
    lease = now + timedelta(seconds=settings.NUCLEUS_SYNC_CLAIM_SECONDS)
    params = [dataset_id, adapt(now), dataset_id, nucleus_dataset_id, adapt(due_before), limit, token, adapt(lease), adapt(now)]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return sorted(row[0] for row in cursor.fetchall())


# An item is on Nucleus when it was appended, or when it is a frame of a scene that was. Primary
# key lookups per candidate: the claim scans the sync queue index and stops at `limit`.
_ON_NUCLEUS_SQL = (
    " AND ({annotation}.item_id IS NULL OR EXISTS (SELECT 1 FROM {item} i LEFT JOIN {scene} s ON s.id = i.scene_id "
    "WHERE i.id = {annotation}.item_id AND (i.nucleus_uploaded_at IS NOT NULL OR s.nucleus_uploaded_at IS NOT NULL)))"
    " AND ({annotation}.scene_id IS NULL OR EXISTS (SELECT 1 FROM {scene} s "
    "WHERE s.id = {annotation}.scene_id AND s.nucleus_uploaded_at IS NOT NULL))"
)


def _table(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _claim_renew(*, token: str) -> None:
    lease = timezone.now() + timedelta(seconds=settings.NUCLEUS_SYNC_CLAIM_SECONDS)
    CategoryAnnotation.objects.filter(sync_claim=token).update(sync_claimed_until=lease)


def _release(token: str) -> None:
    """Let go of what is left of the batch once its outcome is written: the annotations relabelled
    while in flight, still pending, to be claimed again at once."""
    CategoryAnnotation.objects.filter(sync_claim=token).update(sync_claim=None, sync_claimed_until=None)


def _with_content(queryset):
    """Annotations with everything their payloads are built from (3 queries)."""
    return queryset.select_related("item", "scene", "taxonomy", "label").prefetch_related("labels", "taxonomy__labels")


def _taxonomies_ensure(*, remote: nucleus.RemoteDataset, taxonomies: Iterable[Taxonomy], token: str) -> dict[int, str]:
    """Make Nucleus know these taxonomies with the very labels (prefetched) that payloads use, one
    by one; {taxonomy id: Nucleus's message} of those it refused (the others are done). Raises
    NucleusUnavailable: nothing more can be done now."""
    refused = {}
    for taxonomy in taxonomies:
        try:
            _taxonomy_ensure(remote=remote, taxonomy=taxonomy, token=token)
        except nucleus.NucleusRefused as refusal:
            refused[taxonomy.pk] = refusal.message
    return refused


def _taxonomy_ensure(*, remote: nucleus.RemoteDataset, taxonomy: Taxonomy, token: str) -> None:
    plan = taxonomy_nucleus_plan(taxonomy)
    if plan is None:
        return
    if plan.rebuild and not _taxonomy_rebuild_start(remote=remote, taxonomy=taxonomy, plan=plan, token=token):
        return  # linked to another Nucleus dataset meanwhile: nothing here concerns this one any more
    # The names it will have are deleted first too when owed (a rebuild stopped after its tombstones,
    # a name deleted here and taken again): created first, they would keep the labels and the
    # annotations that the delete must clear, until the delete cleared the new ones too.
    owed = plan.deletes + [taxonomy_name for taxonomy_name, _ in plan.adds]
    refusals = _taxonomy_deletions_apply(remote=remote, dataset_id=taxonomy.dataset_id, taxonomy_names=owed)
    if refusals:
        raise nucleus.NucleusRefused(refusals[0])
    for taxonomy_name, labels in plan.adds:
        remote.add_taxonomy(taxonomy_name, labels)
    _taxonomy_record(remote=remote, taxonomy=taxonomy, plan=plan)


def _taxonomy_rebuild_start(*, remote: nucleus.RemoteDataset, taxonomy: Taxonomy, plan: TaxonomyPlan, token: str) -> bool:
    """Before Nucleus deletes anything, in one transaction: owe its deletes as tombstones, forget
    what Nucleus was given (it is about to lose it) and put every finished annotation of the taxonomy
    back in the outbox (Nucleus deletes them with it). Whatever stops the rebuild after this (a fault,
    a killed worker, the labels or the name changed back meanwhile), a later sync deletes what is
    owed, creates the taxonomy and sends everything again; written after the delete, a rename changed
    back before that would leave Nucleus without the taxonomy while the outbox said synced.

    Claims of other workers are cleared: their sends may land before the delete and must not be
    marked synced. Our own batch keeps its claim: it is sent once the taxonomy is created again.
    False (nothing written) when the dataset was linked to another Nucleus dataset meanwhile."""
    with transaction.atomic():
        if not dataset_nucleus_link_hold(dataset_id=taxonomy.dataset_id, nucleus_dataset_id=remote.dataset_id):
            return False
        _taxonomy_deletions_owe(dataset_id=taxonomy.dataset_id, taxonomy_names=plan.deletes)
        Taxonomy.objects.filter(pk=taxonomy.pk).update(nucleus_labels=None, nucleus_taxonomy_name="")
        finished = CategoryAnnotation.objects.filter(taxonomy_id=taxonomy.pk, status=CategoryAnnotation.Status.FINISHED)
        resent = _send_again(finished.exclude(sync_claim=token))
    taxonomy.nucleus_labels, taxonomy.nucleus_taxonomy_name = None, ""
    logger.info("Rebuilding taxonomy %s on Nucleus; %s annotations go again.", taxonomy.taxonomy_name, resent)
    return True


def _nucleus_taxonomy_delete(*, remote: nucleus.RemoteDataset, dataset_id: int, taxonomy_name: str) -> None:
    """Delete a taxonomy on Nucleus (gone already is fine: an earlier attempt deleted it). Another
    of our taxonomies that Nucleus has under that very name (a name given up by a rename or a
    delete, then taken again) lost its annotations there too: it is created again and resent."""
    try:
        remote.delete_taxonomy(taxonomy_name)
    except nucleus.NucleusRefused as refusal:
        if refusal.status != 404:
            raise
    # Taxonomy names never hold ':', so the part before it is the taxonomy of a True/False one.
    sent_as = taxonomy_name.split(MULTI_LABEL_SEPARATOR, 1)[0]
    for other in Taxonomy.objects.filter(dataset_id=dataset_id, nucleus_taxonomy_name=sent_as, nucleus_labels__isnull=False):
        if taxonomy_name in nucleus_taxonomy_names(sent_as, other.multi_label, other.nucleus_labels):
            with transaction.atomic():
                Taxonomy.objects.filter(pk=other.pk).update(nucleus_labels=None, nucleus_taxonomy_name="")
                _send_again(other.annotations.filter(status=CategoryAnnotation.Status.FINISHED))


def _taxonomy_deletions_apply(*, remote: nucleus.RemoteDataset, dataset_id: int, taxonomy_names: list[str] | None = None) -> list[str]:
    """Delete on Nucleus the taxonomies owed (every tombstone of the dataset, or those of
    `taxonomy_names`), each on its own, then its tombstone (unless the name was owed again
    meanwhile: its row then has a newer created_at and waits for the next sync). A delete Nucleus
    refuses keeps its tombstone for the next sync, and its message is returned; the others go on.
    NucleusUnavailable stops it (what is left stays owed).

    Each tombstone is read just before its delete, not all at the start: one that another worker has
    applied meanwhile (say, a rebuild that re-created the name since) must not be deleted again.
    Tombstones written after the dataset was linked elsewhere are not this remote's."""
    owed = NucleusTaxonomyDeletion.objects.filter(dataset_id=dataset_id, dataset__nucleus_dataset_id=remote.dataset_id).order_by("id")
    if taxonomy_names is not None:
        owed = owed.filter(taxonomy_name__in=taxonomy_names)
    refusals, after = [], 0
    while (deletion := owed.filter(id__gt=after).first()) is not None:
        after = deletion.id
        try:
            _nucleus_taxonomy_delete(remote=remote, dataset_id=dataset_id, taxonomy_name=deletion.taxonomy_name)
        except nucleus.NucleusRefused as refusal:
            refusals.append(f"Deleting taxonomy {deletion.taxonomy_name} on Nucleus: {refusal.message}")
            continue
        NucleusTaxonomyDeletion.objects.filter(pk=deletion.pk, created_at=deletion.created_at).delete()
    return refusals


def _taxonomy_record(*, remote: nucleus.RemoteDataset, taxonomy: Taxonomy, plan: TaxonomyPlan) -> None:
    """Remember what Nucleus now has, unless the dataset was linked to another Nucleus dataset
    meanwhile: the link change forgot every snapshot, and this one is about the old dataset."""
    with transaction.atomic():
        if not dataset_nucleus_link_hold(dataset_id=taxonomy.dataset_id, nucleus_dataset_id=remote.dataset_id):
            return
        Taxonomy.objects.filter(pk=taxonomy.pk).update(nucleus_labels=plan.labels, nucleus_taxonomy_name=plan.taxonomy_name)
    taxonomy.nucleus_labels = plan.labels
    taxonomy.nucleus_taxonomy_name = plan.taxonomy_name


def _mark(annotations: Iterable[CategoryAnnotation], *, token: str, **fields) -> int:
    """Update the annotations that are still ours and still at the version we sent (an annotation
    relabelled meanwhile is left alone: it is pending and goes again). One UPDATE per version."""
    by_version: dict[int, list[int]] = defaultdict(list)
    for annotation in annotations:
        by_version[annotation.version].append(annotation.id)
    return sum(
        CategoryAnnotation.objects.filter(id__in=ids, version=version, sync_claim=token).update(
            sync_claim=None, sync_claimed_until=None, **fields
        )
        for version, ids in by_version.items()
    )


def _mark_failed(failures: list[tuple[CategoryAnnotation, str]], *, token: str) -> int:
    """Mark failed, each with its own message, the annotations still ours at the version sent."""
    marked = 0
    for start in range(0, len(failures), MESSAGES_PER_UPDATE):
        chunk = failures[start : start + MESSAGES_PER_UPDATE]
        marked += _mark(
            [annotation for annotation, _ in chunk],
            token=token,
            sync_state=State.FAILED,
            sync_error=Case(*[When(id=annotation.id, then=Value(message)) for annotation, message in chunk]),
            sync_attempts=F("sync_attempts") + 1,
        )
    return marked


def _retry_later(*, annotations: list[CategoryAnnotation], token: str, message: str, retry_after: float | None) -> BatchOutcome:
    """Schedule another attempt (exponential backoff, equal jitter, at least `retry_after`), or mark
    failed the annotations that have used up NUCLEUS_SYNC_MAX_ATTEMPTS. Each annotation waits after
    its own attempts (one UPDATE per distinct count): a fresh answer batched with one retried for the
    seventh time does not inherit its hour-long wait."""
    by_attempts: dict[int, list[CategoryAnnotation]] = defaultdict(list)
    for annotation in annotations:
        by_attempts[annotation.sync_attempts].append(annotation)
    last = settings.NUCLEUS_SYNC_MAX_ATTEMPTS - 1  # attempts made before this one, on the last attempt
    now = timezone.now()
    delays = []
    for attempts, group in by_attempts.items():
        delays.append(_retry_delay(attempt=attempts + 1, retry_after=retry_after))
        _mark(
            group,
            token=token,
            sync_attempts=F("sync_attempts") + 1,
            sync_state=Case(When(sync_attempts__gte=last, then=Value(State.FAILED)), default=Value(State.PENDING)),
            sync_next_attempt_at=now + timedelta(seconds=delays[-1]),
            sync_error=message,
        )
    # For the report only (one that was relabelled meanwhile was not marked): no query for it.
    failed = sum(annotation.sync_attempts >= last for annotation in annotations)
    logger.warning("Nucleus sync of %s annotations will be retried in %.0f s or later: %s", len(annotations), min(delays), message)
    return BatchOutcome(
        annotations=len(annotations), failed=failed, retrying=len(annotations) - failed, fault=True, errors=[message]
    )


def _retry_delay(*, attempt: int, retry_after: float | None) -> float:
    """Seconds to wait after attempt number `attempt` failed (the first attempt is 1)."""
    ceiling = min(settings.NUCLEUS_SYNC_BACKOFF_MAX_SECONDS, settings.NUCLEUS_SYNC_BACKOFF_BASE_SECONDS * 2 ** (attempt - 1))
    # Equal jitter (half fixed, half random) rather than full: the attempts then span at least
    # half the nominal backoff (about 21 minutes with the defaults), so an outage shorter than that
    # never ends with annotations marked failed, while workers still spread their retries.
    return max(retry_after or 0.0, random.uniform(ceiling / 2, ceiling))


def _reconcile(*, built: list[tuple[CategoryAnnotation, list]], answer: nucleus.AnnotateAnswer, token: str) -> BatchOutcome:
    payloads = sum(len(annotation_payloads) for _, annotation_payloads in built)
    outcome = BatchOutcome(annotations=len(built), payloads=payloads, errors=list(answer.errors))
    failures, unattributed = _attribute_errors(answer.errors, built)
    others = [annotation for annotation, _ in built if annotation.id not in failures]
    outcome.failed = _mark_failed(
        [(annotation, "\n".join(failures[annotation.id])) for annotation, _ in built if annotation.id in failures],
        token=token,
    )
    accounted = not unattributed and answer.processed + answer.ignored + len(answer.errors) == payloads
    if others and not accounted:
        message = (
            f"Nucleus processed {answer.processed} and ignored {answer.ignored} of {payloads} annotations "
            f"without saying which failed" + (": " + "; ".join(unattributed) if unattributed else ".")
        )
        retried = _retry_later(annotations=others, token=token, message=message, retry_after=None)
        outcome.failed += retried.failed
        outcome.retrying += retried.retrying
        outcome.fault = True
        return outcome
    outcome.synced = _mark(
        others, token=token, sync_state=State.SYNCED, synced_version=F("version"),
        sync_attempts=0, sync_next_attempt_at=None, sync_error="",
    )
    return outcome


def _attribute_errors(errors: list[str], built: list[tuple[CategoryAnnotation, list]]) -> tuple[dict[int, list[str]], list[str]]:
    """The errors of each annotation, found by the reference_id and the taxonomy_name of one of its
    payloads, both named in the error (see `_named_among`); and the errors that name no annotation
    of the batch."""
    failures: dict[int, list[str]] = defaultdict(list)
    unattributed: list[str] = []
    if not errors:
        return failures, unattributed
    by_reference_id: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for annotation, payloads in built:
        for payload in payloads:
            by_reference_id[payload["reference_id"]].append((payload["taxonomy_name"], annotation.id))
    taxonomy_names = {taxonomy_name for keys in by_reference_id.values() for taxonomy_name, _ in keys}
    for error in errors:
        named_taxonomies = _named_among(error, taxonomy_names)
        named = {
            annotation_id
            for reference_id in (_named_among(error, by_reference_id) if named_taxonomies else ())
            for taxonomy_name, annotation_id in by_reference_id[reference_id]
            if taxonomy_name in named_taxonomies
        }
        for annotation_id in named:
            failures[annotation_id].append(error)
        if not named:
            unattributed.append(error)
    return failures, unattributed


def _named_among(text: str, names: Iterable[str]) -> set[str]:
    """The names that `text` names as whole words: `image_1` is not named by `image_10`, nor
    `attributes` by `attributes:logo`. Names may hold spaces, so a quoted name must be the whole
    quoted string (`shirt` is not named by `'shirt color'`), and a name that appears only inside a
    longer one also named is not named (`shirt` in `Taxonomy shirt color does not exist`)."""
    spans: dict[str, list[tuple[int, int]]] = {}
    for name in names:
        if name and name in text:  # the plain `in` first: it is cheap, and a batch has thousands
            matches = re.finditer(rf"(?<![\w:/.-]){re.escape(name)}(?![\w:/-]|\.\w)", text)
            found = [match.span() for match in matches if _quoted_whole(text, *match.span())]
            if found:
                spans[name] = found
    longer = [span for found in spans.values() for span in found]
    return {
        name
        for name, found in spans.items()
        if any(not any(start >= outer[0] and end <= outer[1] and (start, end) != outer for outer in longer) for start, end in found)
    }


def _quoted_whole(text: str, start: int, end: int) -> bool:
    """A match that touches a quote is the whole quoted string: the same quote on both sides."""
    before, after = text[start - 1 : start], text[end : end + 1]
    if before in ("'", '"') or after in ("'", '"'):
        return before == after
    return True


def payload_lines(payloads: Iterable[dict]) -> Iterator[str]:
    """Payloads as JSON Lines, the way `--dry-run` prints them."""
    for payload in payloads:
        yield json.dumps(payload, ensure_ascii=False, sort_keys=True)
