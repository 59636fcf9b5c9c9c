"""Celery tasks: each takes ids, calls a service and returns. Stable names, JSON arguments,
acknowledged late so a worker that dies mid-task leaves the message to be run again."""

from celery import shared_task
from django.conf import settings

from labeling.services.images import item_image_sizes_fill, item_images_verify, item_images_verify_sweep
from labeling.services.sync import sync_run, sync_sweep


@shared_task(name="labeling.items_fill_image_sizes", acks_late=True, reject_on_worker_lost=True)
def items_fill_image_sizes(item_ids: list[int]) -> int:
    return item_image_sizes_fill(item_ids=item_ids)


@shared_task(name="labeling.items_verify_images", acks_late=True, reject_on_worker_lost=True)
def items_verify_images(item_ids: list[int]) -> dict[str, int]:
    """Decode these items' uploads in child processes under the IMAGE_VERIFY_* limits. Idempotent:
    only items still pending are verified."""
    return item_images_verify(item_ids=item_ids)


@shared_task(name="labeling.items_verify_images_sweep", acks_late=True, reject_on_worker_lost=True)
def items_verify_images_sweep() -> int:
    """Run by `celery beat` every IMAGE_VERIFY_SWEEP_SECONDS: enqueue again the uploads still pending."""
    return item_images_verify_sweep()


@shared_task(name="labeling.sync_dataset", acks_late=True, reject_on_worker_lost=True)
def sync_dataset(dataset_id: int, include_waiting: bool = False) -> dict:
    """Send the dataset's pending annotations to Nucleus (`include_waiting`: also those whose retry
    is not due yet, for "Sync now"). Idempotent: it sends only what is pending, with update=True.
    It stops starting batches half-way through its soft time limit and enqueues a successor for the
    rest, so it never runs into the limit (which is below the visibility timeout)."""
    budget = settings.CELERY_TASK_SOFT_TIME_LIMIT / 2
    return sync_run(dataset_id=dataset_id, time_budget=budget, include_waiting=include_waiting).as_dict()


@shared_task(name="labeling.sync_sweep", acks_late=True, reject_on_worker_lost=True)
def sync_sweep_task() -> list[int]:
    """Run by `celery beat` every NUCLEUS_SYNC_SWEEP_SECONDS: enqueue a sync of every dataset with
    annotations pending and due."""
    return sync_sweep()
