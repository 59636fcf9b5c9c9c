"""Who may write an answer on an item or scene now: one rule for every write path (submit/,
submit-and-next/, draft/, annotations/ and the import_annotations command).

The rule reads the item's (or scene's) queue task and the writer's role in the dataset:
- a dataset admin may write anything; the change is audited with them as its actor;
- a labeler may write on the task they hold, also once its lease ran out as long as nobody claimed
  it since (the task still names them as its holder; the writing statement claims it again);
- a labeler may change their own finished work (a new version); nothing else.

It is written once, as data (`WRITABLE`). `writable_sql` turns it into the condition the queue's
statements carry in their WHERE (so a submit stays one compare-and-set), `writable` into the same
test on a task row read under lock (the annotations API), and `write_refusal` says why a refused
write was refused (409: the queue decides, someone holds it, or someone took it over from the
writer's expired lease and finished it; 403: someone else's finished work).
A role missing from `WRITABLE` (a reviewer, later) may write nothing until it is given its row.
`answers_save` below these paths stores what they decided and checks no one; the Django admin has
no form that writes an answer.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from labeling.errors import RowError
from labeling.models import DatasetMember, Item, Scene, Task


@dataclass(frozen=True)
class WriteRule:
    """What a role may write on: `anything`, or the tasks in one of the `own` states whose column
    names the writer (`("open", "holder_id")`: the task they hold)."""

    anything: bool = False
    own: tuple[tuple[str, str], ...] = ()


WRITABLE: dict[str, WriteRule] = {
    DatasetMember.Role.ADMIN: WriteRule(anything=True),
    DatasetMember.Role.LABELER: WriteRule(own=((Task.State.OPEN, "holder_id"), (Task.State.DONE, "done_by_id"))),
}
NOTHING = WriteRule()

HELD_BY_ANOTHER = "Another labeler holds this task now."
FINISHED_BY_ANOTHER = "Another labeler finished this; only an admin of the dataset can change it."
TAKEN_OVER_AND_FINISHED = "Your lease ran out and another labeler took this and finished it."
NOT_HANDED_OUT = "This is not a task you hold: take it from the queue (next/), which decides what you answer."
NOT_QUEUED_YET = "This is not in the queue yet: its image is still being checked."
IMAGE_FAILED = "Its image failed its check; it is not in the queue."


@dataclass(frozen=True)
class Refusal:
    status: int  # 409: ask the queue again; 403: not yours to change
    message: str


class WriteRefused(Exception):
    """Writes the ownership rule refused, one row each (index None for a single-target write);
    nothing of the request was stored."""

    def __init__(self, refused: Sequence[tuple[int | None, Refusal]]):
        self.refused = list(refused)
        # One status for the request: a 403 is not cured by asking the queue again, a 409 may be.
        self.status = 403 if any(refusal.status == 403 for _, refusal in self.refused) else 409
        self.rows = [RowError(index=index, field="reference_id", message=refusal.message) for index, refusal in self.refused]
        super().__init__("; ".join(str(row) for row in self.rows))


def writable_sql(*, role: str, user_id: int, table: str) -> tuple[str, list]:
    """The rule as an SQL condition on the task row `table` (a quoted name or alias), with its parameters."""
    rule = WRITABLE.get(role, NOTHING)
    if rule.anything:
        return "1 = 1", []
    if not rule.own:
        return "1 = 0", []
    clauses = " OR ".join(f"({table}.state = %s AND {table}.{column} = %s)" for _state, column in rule.own)
    return f"({clauses})", [value for state, _column in rule.own for value in (str(state), user_id)]


def writable(*, task: Task | None, role: str, user_id: int) -> bool:
    """The rule on a task row read by the caller (None: the target has no queue task)."""
    rule = WRITABLE.get(role, NOTHING)
    if rule.anything:
        return True
    return task is not None and any(task.state == state and getattr(task, column) == user_id for state, column in rule.own)


def write_refusal(*, task: Task | None, role: str, user_id: int, now) -> Refusal | None:
    """None if the rule lets this user write on the task's item or scene, else why not."""
    if writable(task=task, role=role, user_id=user_id):
        return None
    if task is not None and task.state == Task.State.DONE:
        # The writer's lease ran out and the labeler who took the task over finished it: like a
        # task held by another now, not like work that was never theirs.
        if user_id is not None and task.previous_holder_id == user_id:
            return Refusal(409, TAKEN_OVER_AND_FINISHED)
        return Refusal(403, FINISHED_BY_ANOTHER)
    if task is not None and task.state == Task.State.WAITING:
        return Refusal(409, IMAGE_FAILED if _image_failed(task) else NOT_QUEUED_YET)
    if task is not None and task.holder_id is not None and task.lease_expires_at >= now:
        return Refusal(409, HELD_BY_ANOTHER)
    return Refusal(409, NOT_HANDED_OUT)


def _image_failed(task: Task) -> bool:
    """Whether a waiting task waits for good: its item's image (a scene: one of its frames) failed its check."""
    images = Item.objects.filter(pk=task.item_id) if task.item_id is not None else Item.objects.filter(scene_id=task.scene_id)
    return images.filter(image_check=Item.ImageCheck.FAILED).exists()


def targets_claim_for_writing(*, targets: Sequence[tuple[int, Item | Scene]], user, role: str) -> None:
    """Lock the queue tasks of these (row index, target) pairs and refuse the whole batch, naming
    every refused row, unless the rule lets the user write on each; then claim them for the writer
    as a submit does: a task they hold is leased to them again (one whose lease ran out with nobody
    claiming since is claimed back), and finished work they change becomes finished by them.

    Call inside `atomic()`: the task rows stay locked until the caller's writes are stored, so no
    claim or submit can come between this check and them. A frame of a scene follows its scene's task."""
    now = timezone.now()
    item_ids = {target.pk for _, target in targets if isinstance(target, Item) and target.scene_id is None}
    scene_ids = {target.scene_id if isinstance(target, Item) else target.pk for _, target in targets} - {None}
    # In id order, the order every write path locks tasks in (labeling/services/locks.py).
    found = Task.objects.select_for_update().filter(Q(item_id__in=item_ids) | Q(scene_id__in=scene_ids)).order_by("id")
    tasks = {("item", task.item_id) if task.item_id else ("scene", task.scene_id): task for task in found}

    def task_of(target: Item | Scene) -> Task | None:
        if isinstance(target, Scene):
            return tasks.get(("scene", target.pk))
        return tasks.get(("scene", target.scene_id) if target.scene_id else ("item", target.pk))

    user_id = getattr(user, "pk", None)
    refused = []
    for index, target in targets:
        refusal = write_refusal(task=task_of(target), role=role, user_id=user_id, now=now)
        if refusal is not None:
            refused.append((index, refusal))
    if refused:
        raise WriteRefused(refused)
    # A script's write (no user) holds nothing, though an unheld task's holder is None too.
    held = [task.pk for task in tasks.values() if task.state == Task.State.OPEN and user_id is not None and task.holder_id == user_id]
    if held:
        Task.objects.filter(pk__in=held).update(lease_expires_at=now + timedelta(seconds=settings.LABELING_LEASE_SECONDS))
    finished = [task.pk for task in tasks.values() if task.state == Task.State.DONE]
    if finished:
        Task.objects.filter(pk__in=finished).update(done_by_id=user_id, done_at=now)
