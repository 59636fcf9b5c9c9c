"""Celery tasks: each takes ids, calls a service and returns. Stable names, JSON arguments,
acknowledged late so a worker that dies mid-task leaves the message to be run again."""

from celery import shared_task

from labeling.services.images import item_image_sizes_fill


@shared_task(name="labeling.items_fill_image_sizes", acks_late=True, reject_on_worker_lost=True)
def items_fill_image_sizes(item_ids: list[int]) -> int:
    return item_image_sizes_fill(item_ids=item_ids)
