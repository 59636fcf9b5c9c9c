"""Filling in the size of images known only by URL, with the SSRF-safe fetch.

The fetch is network I/O, so it runs in a Celery task after the rows are committed, never inside
a transaction; the write that follows only fills a size that is still missing, so running a task
twice (acks_late redelivery) changes nothing.
"""

import logging
from collections.abc import Sequence

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from labeling.models import Item
from labeling.remote_images import fetch_remote_image

logger = logging.getLogger(__name__)
SIZE_BATCH = 200


def item_image_sizes_fill(*, item_ids: Sequence[int]) -> int:
    """Fetch the images of these items that have an image_url and no size yet; returns how many got
    one. An image that cannot be fetched keeps no size: the labeling page still shows it by URL."""
    filled = 0
    for item_id, url in Item.objects.filter(id__in=item_ids, width__isnull=True).exclude(image_url="").values_list("id", "image_url"):
        try:
            info = fetch_remote_image(url)
        except ValidationError as error:
            logger.warning("No size for item %s (%s): %s", item_id, url, error.messages[0])
            continue
        filled += Item.objects.filter(id=item_id, width__isnull=True).update(width=info.width, height=info.height)
    return filled


def item_image_sizes_request(*, items: Sequence[Item]) -> None:
    """Ask the workers for the sizes of new URL items, once the rows are committed.

    Off on the embedded default (REMOTE_IMAGE_SIZES follows whether a broker is configured): with
    eager tasks, an import of 100k URLs would wait for 100k downloads."""
    if not settings.REMOTE_IMAGE_SIZES:
        return
    from labeling.tasks import items_fill_image_sizes

    ids = [item.id for item in items if item.image_url and item.width is None]
    for start in range(0, len(ids), SIZE_BATCH):
        chunk = ids[start : start + SIZE_BATCH]
        transaction.on_commit(lambda chunk=chunk: items_fill_image_sizes.delay(chunk))
