"""The queue's guarantee under real concurrency: many labelers asking at the same instant never get
the same task. Each claimer runs in its own thread with its own database connection, on whichever
database the suite runs on (the suite runs on PostgreSQL and on SQLite)."""

from datetime import timedelta

import pytest
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
