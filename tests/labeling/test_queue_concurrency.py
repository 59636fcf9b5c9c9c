"""The queue's guarantee under real concurrency: many labelers asking at the same instant never get
the same task. Each claimer runs in its own thread with its own database connection, on whichever
database the suite runs on (the suite runs on PostgreSQL and on SQLite)."""

import threading
import time
from datetime import datetime, timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from labeling.models import Task
from labeling.services.items import items_import
from labeling.services.queue import task_next
from tests.concurrency import all_at_once
from tests.factories import DatasetFactory, UserFactory

CLAIMERS = 20


def claim_all_at_once(dataset, users) -> list[int | None]:
    """Every claimer released together; the task id each one got."""
    held = all_at_once([lambda user=user: task_next(dataset=dataset, user=user) for user in users])
    return [h.task.id if h else None for h in held]


@pytest.fixture
def dataset_with_items(transactional_db):
    dataset = DatasetFactory()
    items_import(dataset=dataset, rows=[{"reference_id": f"image_{n}", "image_url": f"https://a.test/{n}.jpg"} for n in range(50)])
    return dataset


@pytest.mark.django_db(transaction=True)
def test_twenty_labelers_claiming_at_once_get_twenty_different_tasks(dataset_with_items):
    users = [UserFactory() for _ in range(CLAIMERS)]
    claimed = claim_all_at_once(dataset_with_items, users)
    assert None not in claimed
    assert len(set(claimed)) == CLAIMERS
    holders = dict(Task.objects.filter(id__in=claimed).values_list("id", "holder_id"))
    assert {holders[task_id] for task_id in claimed} == {user.id for user in users}


@pytest.mark.django_db(transaction=True)
def test_more_labelers_than_tasks_leaves_the_rest_empty_handed(transactional_db):
    dataset = DatasetFactory()
    items_import(dataset=dataset, rows=[{"reference_id": f"image_{n}", "image_url": f"https://a.test/{n}.jpg"} for n in range(5)])
    claimed = claim_all_at_once(dataset, [UserFactory() for _ in range(CLAIMERS)])
    assert sorted(task_id for task_id in claimed if task_id) == sorted(Task.objects.values_list("id", flat=True))
    assert claimed.count(None) == CLAIMERS - 5


@pytest.mark.django_db(transaction=True)
def test_expired_leases_go_back_to_the_queue_for_concurrent_claimers(dataset_with_items):
    first_wave = [UserFactory() for _ in range(10)]
    taken = claim_all_at_once(dataset_with_items, first_wave)
    Task.objects.filter(id__in=taken).update(lease_expires_at=timezone.now() - timedelta(seconds=1))

    second_wave = claim_all_at_once(dataset_with_items, [UserFactory() for _ in range(CLAIMERS)])

    assert len(set(second_wave)) == CLAIMERS
    assert set(taken) <= set(second_wave), "the expired tasks come first in queue order"


@pytest.mark.django_db(transaction=True)
def test_a_holder_asking_again_as_its_lease_runs_out_does_not_take_back_the_task_another_labeler_just_claimed(
    dataset_with_items, monkeypatch
):
    """The claim's candidate lookups and its compare-and-set read the row at different times on
    PostgreSQL: the holder's lookup (no lock) still sees its own lease while another labeler's claim
    of the expired task waits to commit. Made to happen every time: each claimer has a clock of its
    own (the holder's reads the instant its lease ends, still its own; the other's one microsecond
    later, past it), the other labeler's claim is held open until the holder's statement waits on its
    row lock, then commits. On SQLite the statement runs alone, so it never sees the stale row."""
    holder, other = UserFactory(), UserFactory()
    task = task_next(dataset=dataset_with_items, user=holder).task
    lease_ends = timezone.now() + timedelta(hours=1)
    Task.objects.filter(pk=task.pk).update(lease_expires_at=lease_ends)
    clocks: dict[int, datetime] = {}
    real_now = timezone.now
    monkeypatch.setattr(timezone, "now", lambda: clocks.get(threading.get_ident()) or real_now())
    other_has_claimed = threading.Event()
    holder_pid: list[int] = []

    def other_claims() -> int:
        clocks[threading.get_ident()] = lease_ends + timedelta(microseconds=1)
        with transaction.atomic():
            claimed = task_next(dataset=dataset_with_items, user=other).task.id
            other_has_claimed.set()
            if connection.vendor == "postgresql":
                wait_until_waiting_on_a_lock(holder_pid)
        return claimed

    def holder_asks_again() -> int:
        clocks[threading.get_ident()] = lease_ends
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                holder_pid.append(cursor.fetchone()[0])
        assert other_has_claimed.wait(timeout=30)
        return task_next(dataset=dataset_with_items, user=holder).task.id

    other_got, holder_got = all_at_once([other_claims, holder_asks_again])

    assert other_got == task.id
    assert holder_got != task.id, "both labelers were handed the same task"
    assert dict(Task.objects.filter(id__in=[other_got, holder_got]).values_list("id", "holder_id")) == {other_got: other.id, holder_got: holder.id}


def wait_until_waiting_on_a_lock(pid: list[int]) -> None:
    """Return once the backend `pid[0]` waits for a lock (pg_locks is read live, not per transaction)."""
    deadline = time.monotonic() + 30
    with connection.cursor() as cursor:
        while True:
            if pid:
                cursor.execute("SELECT EXISTS (SELECT 1 FROM pg_locks WHERE pid = %s AND NOT granted)", [pid[0]])
                if cursor.fetchone()[0]:
                    return
            assert time.monotonic() < deadline, "the holder's claim never waited for the other labeler's"
            time.sleep(0.01)
