"""One rule decides who may write an answer (labeling/services/ownership.py): every write path x
every row of its table, on both databases. A refusal stores nothing and the holder keeps the task.

Leases run out by moving `lease_expires_at` into the past in the database, never by waiting."""

import io
import json
from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from labeling.models import CategoryAnnotation, Dataset, DatasetMember, Item, Task
from labeling.services.annotations_import import annotations_import
from labeling.services.ownership import (
    FINISHED_BY_ANOTHER, HELD_BY_ANOTHER, IMAGE_FAILED, NOT_HANDED_OUT, NOT_QUEUED_YET, TAKEN_OVER_AND_FINISHED, WriteRefused,
    writable, writable_sql,
)
from labeling.services.queue import task_next, task_submit
from taxonomies.services import taxonomy_create
from tests.concurrency import all_at_once
from tests.factories import DatasetFactory, DatasetMemberFactory, UserFactory
from tests.labeling.api.support import answer, errors_of, item_with_task, token_client, url

pytestmark = pytest.mark.django_db

PANTS = {"taxonomy_name": "clothing_type", "label": "pants"}


@dataclass(frozen=True)
class Row:
    """One row of the rule's table: who writes (bob the labeler or alice the admin) on image_1 left
    in this state, and the answer: 200, or (status, message) of the refusal."""

    name: str
    writer: str
    setup: tuple[str, ...]  # steps, in order (see `arrange`)
    status: int
    message: str = ""

    def __str__(self) -> str:
        return self.name


ROWS = [
    Row("labeler-on-the-task-they-hold", "bob", ("bob next",), 200),
    Row("labeler-lease-ran-out-nobody-claimed-since", "bob", ("bob next", "expire"), 200),
    Row("labeler-lease-ran-out-another-holds-it", "bob", ("bob next", "expire", "dana next"), 409, HELD_BY_ANOTHER),
    # dana's claim remembered bob as the task's previous holder: a 409 like the row above, not the
    # 403 of "another labeler's finished work".
    Row("labeler-lease-ran-out-another-finished-it", "bob", ("bob next", "expire", "dana next", "dana submit"), 409, TAKEN_OVER_AND_FINISHED),
    Row("labeler-on-an-open-task-nobody-holds", "bob", (), 409, NOT_HANDED_OUT),
    # Free for the queue to hand out again, but not to whoever asks first.
    Row("labeler-on-a-task-whose-other-holder-let-the-lease-run-out", "bob", ("dana next", "expire"), 409, NOT_HANDED_OUT),
    Row("labeler-on-an-item-whose-image-is-being-checked", "bob", ("waiting",), 409, NOT_QUEUED_YET),
    Row("labeler-on-an-item-whose-image-failed-its-check", "bob", ("waiting", "failed"), 409, IMAGE_FAILED),
    Row("labeler-on-their-own-finished-work", "bob", ("bob next", "bob submit"), 200),
    Row("labeler-on-another-labelers-finished-work", "bob", ("dana next", "dana submit"), 403, FINISHED_BY_ANOTHER),
    Row("labeler-on-an-item-another-labeler-holds", "bob", ("dana next",), 409, HELD_BY_ANOTHER),
    Row("admin-on-an-item-a-labeler-holds", "alice", ("dana next",), 200),
    Row("admin-on-a-labelers-finished-work", "alice", ("dana next", "dana submit"), 200),
    Row("admin-on-an-open-task-nobody-holds", "alice", (), 200),
    Row("admin-on-an-item-whose-image-is-being-checked", "alice", ("waiting",), 200),
]
PATHS = ["submit", "submit-and-next", "draft", "annotations-one-row", "annotations-list", "django-admin", "command"]


@pytest.fixture
def cast(dataset, admin, labeler, clothing_type, items):
    """alice (admin), bob and dana (labelers); image_3 finished by bob, so a list can start with a
    row bob may always write."""
    dana = DatasetMemberFactory(dataset=dataset, user=UserFactory(username="dana"), role=DatasetMember.Role.LABELER).user
    answer(target=items[2], taxonomy=clothing_type, names=["shirt"], annotator=labeler)
    Task.objects.filter(item=items[2]).update(state=Task.State.DONE, done_by=labeler, done_at=timezone.now())
    return {"alice": admin, "bob": labeler, "dana": dana}


def arrange(dataset, cast: dict, steps: tuple[str, ...]) -> None:
    for step in steps:
        task = Task.objects.filter(item__reference_id="image_1")
        if step == "expire":
            task.update(lease_expires_at=timezone.now() - timedelta(minutes=1))
        elif step == "waiting":
            task.update(state=Task.State.WAITING)
        elif step == "failed":
            # As an upload whose verification failed (only an upload is verified).
            Item.objects.filter(reference_id="image_1").update(
                image="uploads/cut.png", image_url="", image_check=Item.ImageCheck.FAILED, image_error="The image could not be decoded."
            )
        else:
            who, action = step.split()
            client = token_client(cast[who])
            if action == "next":
                assert client.post(url("next", dataset_id=dataset.id)).json()["reference_id"] == "image_1"
            else:
                body = {"reference_id": "image_1", "annotations": [{"taxonomy_name": "clothing_type", "label": "shirt"}]}
                assert client.post(url("submit", dataset_id=dataset.id), body, format="json").status_code == 200


def stored() -> dict:
    """Every row a write can change: equal before and after a refusal."""
    return {
        "tasks": sorted(Task.objects.values_list("pk", "state", "holder_id", "lease_expires_at", "done_by_id", "previous_holder_id")),
        "annotations": sorted(CategoryAnnotation.objects.values_list("pk", "label_id", "status", "version", "annotator_id")),
        "audit": AuditEvent.objects.count(),
    }


@dataclass
class Outcome:
    status: int
    messages: list[str]
    indexes: list


def write(path: str, *, dataset, user, tmp_path) -> Outcome:
    """Write pants on image_1 as `user` through one path."""
    api = token_client(user)
    row = {"reference_id": "image_1", **PANTS}
    if path in ("submit", "submit-and-next", "draft"):
        response = api.post(url(path, dataset_id=dataset.id), {"reference_id": "image_1", "annotations": [PANTS]}, format="json")
    elif path == "annotations-one-row":
        response = api.post(url("annotation-list", dataset_id=dataset.id), row, format="json")
    elif path == "annotations-list":
        response = api.post(url("annotation-list", dataset_id=dataset.id), [{**row, "reference_id": "image_3"}, row], format="json")
    elif path == "django-admin":
        return admin_write(user=user)
    else:
        source = tmp_path / "answers.jsonl"
        source.write_text(json.dumps(row) + "\n")
        try:
            call_command("import_annotations", str(dataset.id), str(source), "--as", user.username, stdout=io.StringIO())
        except CommandError as error:
            return Outcome(0, [str(error)], [])
        return Outcome(200, [], [])
    if response.status_code == 200:
        return Outcome(200, [], [])
    errors = errors_of(response)
    return Outcome(response.status_code, [error["message"] for error in errors], [error.get("index") for error in errors])


def admin_write(*, user) -> Outcome:
    """The Django admin, even for its strongest account: it has no form that writes an answer
    (answers change through the services, which version and audit them)."""
    user.is_staff = user.is_superuser = True
    user.save()
    client = Client()
    client.force_login(user)
    annotation = CategoryAnnotation.objects.filter(item__reference_id="image_1").first()
    if annotation is None:
        response = client.post(reverse("admin:labeling_categoryannotation_add"), {"status": "finished"})
    else:
        response = client.post(reverse("admin:labeling_categoryannotation_change", args=[annotation.pk]), {"status": "finished"})
    return Outcome(response.status_code, [], [])


@pytest.mark.parametrize("row", ROWS, ids=str)
@pytest.mark.parametrize("path", PATHS)
def test_the_write_ownership_matrix(path, row, dataset, cast, tmp_path):
    arrange(dataset, cast, row.setup)
    writer = cast[row.writer]
    before = stored()
    previous = CategoryAnnotation.objects.filter(item__reference_id="image_1", status="finished").first()
    started = timezone.now()

    outcome = write(path, dataset=dataset, user=writer, tmp_path=tmp_path)

    if path == "django-admin":
        assert outcome.status == 403
        assert stored() == before
        return
    if row.status != 200:
        if path == "command":
            assert row.message in outcome.messages[0]
        else:
            assert (outcome.status, outcome.messages) == (row.status, [row.message])
            # A list names the refused row; the row before it, which alone would be accepted, is not stored either.
            assert outcome.indexes == {"annotations-list": [1], "annotations-one-row": [0]}.get(path, [None])
        assert stored() == before  # nothing stored, and whoever held the task still holds it
        return
    assert outcome.status == 200
    task = Task.objects.get(item__reference_id="image_1")
    annotation = CategoryAnnotation.objects.get(item__reference_id="image_1")
    if path == "draft":
        if previous is not None:  # a draft never goes over a finished answer
            assert stored() == before
            return
        assert (annotation.label.name, annotation.status, annotation.annotator) == ("pants", "draft", writer)
        if before_holder(before, task) == writer.pk:  # the writer's lease is renewed (claimed back if it ran out)
            assert (task.holder, task.lease_expires_at > started) == (writer, True)
        else:  # an admin's draft takes nobody's task
            assert (task.holder_id, task.lease_expires_at) == (before_holder(before, task), before_lease(before, task))
        return
    assert (annotation.label.name, annotation.status, annotation.annotator) == ("pants", "finished", writer)
    assert annotation.version == (1 if previous is None else previous.version + 1)
    # Closed as submit closes it: the only required taxonomy is answered.
    assert (task.state, task.holder, task.lease_expires_at, task.done_by) == (Task.State.DONE, None, None, writer)
    assert AuditEvent.objects.filter(actor=writer, reference_id="image_1", created_at__gte=started).exists()
    if path == "annotations-list":
        assert CategoryAnnotation.objects.get(item__reference_id="image_3").label.name == "pants"


def before_holder(before: dict, task: Task):
    return next(row[2] for row in before["tasks"] if row[0] == task.pk)


def before_lease(before: dict, task: Task):
    return next(row[3] for row in before["tasks"] if row[0] == task.pk)


class TestTheRuleIsOneRule:
    """`writable` (Python, on a locked row) and `writable_sql` (in the queue's statements) come
    from one table; this checks they agree on every kind of task row, for every role."""

    def test_the_sql_condition_and_the_python_test_agree_on_every_row(self, dataset, admin, labeler, clothing_type, items):
        other = UserFactory(username="dana")
        now = timezone.now()
        soon, gone = now + timedelta(minutes=5), now - timedelta(minutes=5)
        shapes = [
            dict(state="open"), dict(state="open", holder=labeler, lease_expires_at=soon),
            dict(state="open", holder=labeler, lease_expires_at=gone), dict(state="open", holder=other, lease_expires_at=soon),
            dict(state="open", holder=other, lease_expires_at=gone), dict(state="done", done_by=labeler),
            dict(state="done", done_by=other), dict(state="done"), dict(state="waiting"),
            dict(state="open", done_by=labeler),
            # Having held it before changes only why a write is refused, never whether.
            dict(state="done", done_by=other, previous_holder=labeler),
            dict(state="open", holder=other, lease_expires_at=soon, previous_holder=labeler),
        ]
        tasks = []
        for index, shape in enumerate(shapes):
            item = item_with_task(dataset, f"shape_{index}")
            Task.objects.filter(item=item).update(**shape)
            tasks.append(Task.objects.get(item=item))
        table = connection.ops.quote_name(Task._meta.db_table)
        for role in (*DatasetMember.Role.values, "reviewer"):
            for user in (labeler, admin):
                condition, params = writable_sql(role=role, user_id=user.pk, table=table)
                with connection.cursor() as cursor:
                    cursor.execute(f"SELECT id FROM {table} WHERE dataset_id = %s AND {condition}", [dataset.id, *params])
                    in_sql = {task_id for (task_id,) in cursor.fetchall()}
                in_python = {task.pk for task in Task.objects.filter(dataset=dataset) if writable(task=task, role=role, user_id=user.pk)}
                assert in_sql == in_python, (role, user.username)
        assert len({task.pk for task in tasks if writable(task=task, role="labeler", user_id=labeler.pk)}) == 3


class TestAnnotationsApi:
    def test_a_list_names_every_refused_row_and_answers_403_when_one_is_anothers_finished_work(self, dataset, cast, tmp_path):
        arrange(dataset, cast, ("dana next",))  # dana holds image_1; image_2 nobody holds; image_3 bob's own
        Task.objects.filter(item__reference_id="image_2").update(state=Task.State.DONE, done_by=cast["dana"])
        before = stored()
        rows = [{"reference_id": ref, **PANTS} for ref in ("image_3", "image_1", "image_2")]
        response = token_client(cast["bob"]).post(url("annotation-list", dataset_id=dataset.id), rows, format="json")
        assert (response.status_code, errors_of(response)) == (403, [
            {"index": 1, "field": "reference_id", "message": HELD_BY_ANOTHER},
            {"index": 2, "field": "reference_id", "message": FINISHED_BY_ANOTHER},
        ])
        assert stored() == before

    def test_an_answer_after_the_lease_ran_out_claims_the_task_back_until_the_item_is_done(self, dataset, cast, attributes):
        arrange(dataset, cast, ("bob next", "expire"))
        started = timezone.now()
        response = token_client(cast["bob"]).post(url("annotation-list", dataset_id=dataset.id), {"reference_id": "image_1", **PANTS}, format="json")
        assert response.status_code == 200
        task = Task.objects.get(item__reference_id="image_1")
        # attributes is still to answer: the task stays open, and bob's again for a new lease.
        assert (task.state, task.holder, task.lease_expires_at > started) == (Task.State.OPEN, cast["bob"], True)
        assert token_client(cast["dana"]).post(url("next", dataset_id=dataset.id)).json()["reference_id"] == "image_2"

    def test_a_script_writing_as_admin_with_no_user_holds_nothing(self, dataset, cast, attributes):
        """The sync's tests and pipelines store answers with no annotator; an unheld task's holder is None too."""
        annotations_import(dataset=dataset, rows=[{"reference_id": "image_1", **PANTS}], annotator=None, role=DatasetMember.Role.ADMIN)
        task = Task.objects.get(item__reference_id="image_1")
        assert (task.state, task.holder, task.lease_expires_at) == (Task.State.OPEN, None, None)
        assert CategoryAnnotation.objects.get(item__reference_id="image_1").label.name == "pants"

    def test_a_frame_follows_its_scenes_task(self, scene_dataset, admin, labeler):
        """A frame has no task of its own: whoever may write on its scene may write on it."""
        taxonomy_create(dataset=scene_dataset, taxonomy_name="blur", labels=["sharp", "blurred"], applies_to="items")
        frames = [{"reference_id": f"f{n}", "image_url": f"https://images.example.com/f{n}.jpg"} for n in range(2)]
        token_client(admin).post(url("scene-list", dataset_id=scene_dataset.id), [{"reference_id": "drive_1", "frames": frames}], format="json")
        bob = token_client(labeler)
        row = {"reference_id": "f0", "taxonomy_name": "blur", "label": "sharp"}
        before = stored()
        refused = bob.post(url("annotation-list", dataset_id=scene_dataset.id), row, format="json")
        assert (refused.status_code, errors_of(refused)[0]["message"], stored()) == (409, NOT_HANDED_OUT, before)
        assert bob.post(url("next", dataset_id=scene_dataset.id)).json()["reference_id"] == "drive_1"
        assert bob.post(url("annotation-list", dataset_id=scene_dataset.id), row, format="json").status_code == 200
        assert CategoryAnnotation.objects.get(item__reference_id="f0").annotator == labeler


    @pytest.mark.parametrize("failed_frame, message", [(None, NOT_QUEUED_YET), ("f1", IMAGE_FAILED)])
    def test_a_scene_waiting_for_its_frames_says_whether_one_failed(self, scene_dataset, admin, labeler, failed_frame, message):
        taxonomy_create(dataset=scene_dataset, taxonomy_name="blur", labels=["sharp", "blurred"], applies_to="items")
        frames = [{"reference_id": f"f{n}", "image_url": f"https://images.example.com/f{n}.jpg"} for n in range(2)]
        token_client(admin).post(url("scene-list", dataset_id=scene_dataset.id), [{"reference_id": "drive_1", "frames": frames}], format="json")
        Task.objects.filter(scene__reference_id="drive_1").update(state=Task.State.WAITING)
        Item.objects.filter(reference_id=failed_frame).update(image="uploads/cut.png", image_url="", image_check=Item.ImageCheck.FAILED)
        before = stored()
        refused = token_client(labeler).post(
            url("submit", dataset_id=scene_dataset.id), {"reference_id": "drive_1", "annotations": []}, format="json"
        )
        assert (refused.status_code, [error["message"] for error in errors_of(refused)], stored()) == (409, [message], before)


class TestImportAnnotationsCommand:
    def run(self, dataset, user, tmp_path, rows) -> str:
        source = tmp_path / "answers.jsonl"
        source.write_text("".join(json.dumps(row) + "\n" for row in rows))
        out = io.StringIO()
        call_command("import_annotations", dataset.name, str(source), "--as", user.username, stdout=out)
        return out.getvalue()

    def test_an_admin_brings_labels_in_and_is_told_how_many(self, dataset, cast, tmp_path):
        out = self.run(dataset, cast["alice"], tmp_path, [{"reference_id": ref, **PANTS} for ref in ("image_1", "image_2")])
        assert out == "Imported 2 annotations into Clothing as alice (2 new or changed)\n"
        assert set(Task.objects.filter(state=Task.State.DONE, done_by=cast["alice"]).values_list("item__reference_id", flat=True)) == {"image_1", "image_2"}

    def test_someone_who_is_not_a_member_is_refused(self, dataset, cast, outsider, tmp_path):
        before = stored()
        with pytest.raises(CommandError, match="'charlie' is not a member of Clothing"):
            self.run(dataset, outsider, tmp_path, [{"reference_id": "image_1", **PANTS}])
        assert stored() == before

    def test_a_refusal_names_the_row(self, dataset, cast, tmp_path):
        with pytest.raises(CommandError) as refused:
            self.run(dataset, cast["bob"], tmp_path, [{"reference_id": "image_3", **PANTS}, {"reference_id": "image_1", **PANTS}])
        assert str(refused.value) == f"Nothing was imported: {tmp_path / 'answers.jsonl'} has 1 problem.\n  row 1, reference_id: {NOT_HANDED_OUT}"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("path", ["submit", "annotations"])
def test_a_write_after_the_lease_ran_out_and_a_claim_at_the_same_instant_never_both_win(path):
    """bob's lease ran out; he writes while dana asks for work, released together: either bob's
    write is stored and dana gets another item, or dana holds it and bob's write stores nothing."""
    dataset = DatasetFactory(name="Race")
    bob, dana = UserFactory(username="bob"), UserFactory(username="dana")
    for user in (bob, dana):
        DatasetMemberFactory(dataset=dataset, user=user, role=DatasetMember.Role.LABELER)
    taxonomy_create(dataset=dataset, taxonomy_name="clothing_type", labels=["shirt", "pants"])
    for round_ in range(8):
        for n in (0, 1):
            item_with_task(dataset, f"r{round_}_{n}")
        target = f"r{round_}_0"
        Task.objects.filter(item__reference_id=target).update(holder=bob, lease_expires_at=timezone.now() - timedelta(seconds=1))
        Task.objects.filter(dataset=dataset, state=Task.State.OPEN).exclude(item__reference_id__startswith=f"r{round_}_").update(
            state=Task.State.DONE, holder=None, lease_expires_at=None
        )

        def write():
            fresh = Dataset.objects.get(pk=dataset.pk)
            try:
                if path == "submit":
                    task_submit(dataset=fresh, user=bob, role="labeler", reference_id=target, rows=[PANTS])
                else:
                    annotations_import(dataset=fresh, rows=[{"reference_id": target, **PANTS}], annotator=bob, role="labeler")
            except WriteRefused as refused:
                return refused.status
            return 200

        status, held = all_at_once([write, lambda: task_next(dataset=dataset, user=dana)])
        task = Task.objects.get(item__reference_id=target)
        stored_answer = CategoryAnnotation.objects.filter(item__reference_id=target).exists()
        if status == 200:
            assert (stored_answer, task.state, task.done_by_id, held.task.item.reference_id) == (True, "done", bob.id, f"r{round_}_1")
        else:
            assert (status, stored_answer, task.holder_id, held.task.item.reference_id) == (409, False, dana.id, target)
