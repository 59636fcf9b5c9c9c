"""Ask-new-classes and label removal at the same moment as a labeler writing their own finished work
again, or as each other: each takes the labels, then the tasks, then the answers
(`labeling.services.locks`), as the submit and annotations/ take the task, then the answers. In
opposite orders PostgreSQL kills one of the two with "deadlock detected" (a 500); both must succeed
or one refuse cleanly, on both databases. SQLite runs one writer at a time: it proves the outcomes."""

import pytest
from django.core.exceptions import ValidationError
from django.db import OperationalError
from django.utils import timezone

from labeling.errors import BatchInvalid
from labeling.models import Dataset, DatasetMember, Task
from labeling.services.taxonomy_removals import label_remove
from labeling.services.annotations_import import annotations_import
from labeling.services.new_classes import taxonomy_ask_new_classes
from labeling.services.ownership import WriteRefused
from labeling.services.queue import task_submit
from taxonomies.models import Label, Taxonomy
from taxonomies.services import taxonomy_add_labels, taxonomy_create
from tests.concurrency import all_at_once
from tests.factories import DatasetFactory, DatasetMemberFactory, UserFactory
from tests.labeling.api.support import item_with_task

# Enough answers that the two transactions' lock-taking overlaps: 4-5 of 6 rounds deadlocked with 300.
ITEMS = 300
ROUNDS = 6

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def race():
    """A multi-label taxonomy, ITEMS items each answered ["logo"] and finished by bob."""
    dataset = DatasetFactory(name="Race")
    bob = UserFactory(username="bob")
    DatasetMemberFactory(dataset=dataset, user=bob, role=DatasetMember.Role.LABELER)
    taxonomy_create(dataset=dataset, taxonomy_name="attributes", labels=["striped", "logo"], multi_label=True)
    for n in range(ITEMS):
        item_with_task(dataset, f"r{n:04}")
    answer_all(dataset, ["logo"])
    return dataset, bob


def answer_all(dataset, labels: list[str]) -> None:
    rows = [{"reference_id": f"r{n:04}", "taxonomy_name": "attributes", "labels": labels} for n in range(ITEMS)]
    annotations_import(dataset=dataset, rows=rows, annotator=None, role=DatasetMember.Role.ADMIN)


def all_done(dataset, bob) -> None:
    Task.objects.filter(dataset=dataset).update(state=Task.State.DONE, done_by=bob, done_at=timezone.now())


def guarded(failures: list, name: str, work):
    """Run `work`; a clean refusal is an outcome, a database error (a deadlock) is a failure."""
    try:
        return work()
    except (WriteRefused, BatchInvalid, ValidationError):
        return "refused"
    except OperationalError as error:
        failures.append((name, str(error).splitlines()[0]))


def ask(taxonomy: Taxonomy):
    return lambda: taxonomy_ask_new_classes(taxonomy=Taxonomy.objects.select_related("dataset").get(pk=taxonomy.pk))


def resubmit(dataset, bob, *, path: str, labels: list[str], shown: list[str]):
    def work():
        fresh = Dataset.objects.get(pk=dataset.pk)
        row = {"taxonomy_name": "attributes", "labels": labels, "shown": shown}
        if path == "annotations":  # bob's token on annotations/: the same rule, the same locks
            return annotations_import(dataset=fresh, rows=[{"reference_id": "r0000", **row}], annotator=bob, role=DatasetMember.Role.LABELER)
        return task_submit(dataset=fresh, user=bob, role=DatasetMember.Role.LABELER, reference_id="r0000", rows=[row])

    return work


def remove(label: Label):
    return lambda: label_remove(label=Label.objects.select_related("taxonomy").get(pk=label.pk), drop_from_annotations=True)


@pytest.mark.parametrize("path", ["submit", "annotations"])
def test_asking_new_classes_while_their_own_work_is_written_again_never_deadlocks(race, path):
    dataset, bob = race
    taxonomy = Taxonomy.objects.get(dataset=dataset)
    failures = []
    for round_ in range(ROUNDS):
        taxonomy_add_labels(taxonomy=taxonomy, labels=[f"new_{round_}"])
        all_done(dataset, bob)
        write = resubmit(dataset, bob, path=path, labels=["striped"], shown=["striped", "logo"])
        all_at_once([lambda: guarded(failures, "ask", ask(taxonomy)), lambda: guarded(failures, path, write)])
        assert failures == []


def test_removing_a_class_while_new_classes_are_asked_never_deadlocks(race):
    dataset, bob = race
    taxonomy = Taxonomy.objects.get(dataset=dataset)
    failures = []
    for round_ in range(ROUNDS):
        (gone,) = taxonomy_add_labels(taxonomy=taxonomy, labels=[f"gone_{round_}"])
        answer_all(dataset, ["logo", gone.name])
        taxonomy_add_labels(taxonomy=taxonomy, labels=[f"new_{round_}"])
        all_done(dataset, bob)
        all_at_once([lambda: guarded(failures, "ask", ask(taxonomy)), lambda: guarded(failures, "remove", remove(gone))])
        assert failures == []
        assert not Label.objects.filter(pk=gone.pk).exists()


@pytest.mark.parametrize("path", ["submit", "annotations"])
def test_removing_a_class_while_a_labeler_takes_it_off_their_work_never_deadlocks(race, path):
    dataset, bob = race
    taxonomy = Taxonomy.objects.get(dataset=dataset)
    failures = []
    for round_ in range(ROUNDS):
        (gone,) = taxonomy_add_labels(taxonomy=taxonomy, labels=[f"gone_{round_}"])
        answer_all(dataset, ["logo", gone.name])
        all_done(dataset, bob)
        shown = list(taxonomy.labels.values_list("name", flat=True))
        write = resubmit(dataset, bob, path=path, labels=["logo"], shown=shown)
        all_at_once([lambda: guarded(failures, "remove", remove(gone)), lambda: guarded(failures, path, write)])
        assert failures == []
        assert not Label.objects.filter(pk=gone.pk).exists()
