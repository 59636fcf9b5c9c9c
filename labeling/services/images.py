"""Verifying uploaded images outside the web worker, and filling in the size of images known
only by URL (with the SSRF-safe fetch).

An upload is stored with image_check=pending and its task waiting (labeling.services.items); after
the commit, `labeling.items_verify_images` decodes each one in a child process under hard limits
(labeling.images.image_verify_in_child) and records the verdict: ok (its task opens) or failed (its
task keeps waiting, and image_error says why). Both the verification and the URL size fetch run
after the rows are committed, never inside a transaction, and write only over a state that is still
pending or missing, so running a task twice (acks_late redelivery, a sweep) changes nothing.
"""

import logging
import tempfile
from collections.abc import Sequence
from contextlib import contextmanager
from datetime import timedelta
from shutil import copyfileobj

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from labeling.images import Verdict, image_verify_in_child
from labeling.models import Item, Scene, Task
from labeling.remote_images import fetch_remote_image

logger = logging.getLogger(__name__)
SIZE_BATCH = 200
# Uploads per verification task: with IMAGE_VERIFY_TIMEOUT_SECONDS each, a task stays far below
# CELERY_TASK_TIME_LIMIT.
VERIFY_BATCH = 10


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


def item_images_verify(*, item_ids: Sequence[int]) -> dict[str, int]:
    """Verify the uploaded images of these items that are still pending, one child process each;
    returns how many passed and failed. Items already verified are skipped."""
    counts = {Item.ImageCheck.OK: 0, Item.ImageCheck.FAILED: 0}
    pending = Item.objects.filter(id__in=item_ids, image_check=Item.ImageCheck.PENDING).exclude(image="")
    for item in pending.only("id", "image", "scene_id").order_by("id"):
        try:
            with _stored_image(item) as stream:
                verdict = image_verify_in_child(stream)
        except OSError as error:
            verdict = Verdict(error=f"The stored image could not be read ({error.strerror or type(error).__name__}).")
        if item_image_verdict_save(item=item, verdict=verdict):
            counts[Item.ImageCheck.FAILED if verdict.error else Item.ImageCheck.OK] += 1
    return {str(state): n for state, n in counts.items()}


@contextmanager
def _stored_image(item: Item):
    """The stored upload as a real file for the child's stdin: the file itself on local disk, a
    temporary copy from any other storage (S3)."""
    try:
        path = item.image.path
    except NotImplementedError:
        path = None
    if path is not None:
        with open(path, "rb") as stream:
            yield stream
        return
    with tempfile.TemporaryFile() as copy, item.image.storage.open(item.image.name, "rb") as stored:
        copyfileobj(stored, copy)
        copy.seek(0)
        yield copy


def item_image_verdict_save(*, item: Item, verdict: Verdict) -> bool:
    """Record a verification: ok with the decoded (displayed) size and the task open, or failed
    with the reason and the task left waiting. A frame's scene task opens once all its frames are
    ok; the scene row is locked so that two workers finishing its last frames at once cannot both
    see the other's frame still pending. False if the item was no longer pending."""
    with transaction.atomic():
        if item.scene_id is not None:
            list(Scene.objects.select_for_update().filter(pk=item.scene_id).values_list("pk"))
        pending = Item.objects.filter(pk=item.pk, image_check=Item.ImageCheck.PENDING)
        if verdict.error:
            return bool(pending.update(image_check=Item.ImageCheck.FAILED, image_error=verdict.error))
        if not pending.update(image_check=Item.ImageCheck.OK, image_error="", width=verdict.width, height=verdict.height):
            return False
        if item.scene_id is None:
            Task.objects.filter(item_id=item.pk, state=Task.State.WAITING).update(state=Task.State.OPEN)
        elif not Item.objects.filter(scene_id=item.scene_id).exclude(image_check=Item.ImageCheck.OK).exists():
            Task.objects.filter(scene_id=item.scene_id, state=Task.State.WAITING).update(state=Task.State.OPEN)
    return True


def item_images_verify_request(*, item_ids: Sequence[int]) -> None:
    """Start the verification of these new uploads once the current transaction commits."""
    ids = list(item_ids)
    for start in range(0, len(ids), VERIFY_BATCH):
        chunk = ids[start : start + VERIFY_BATCH]
        transaction.on_commit(lambda chunk=chunk: item_images_verify_enqueue(item_ids=chunk))


def item_images_verify_enqueue(*, item_ids: Sequence[int]) -> bool:
    """Publish `labeling.items_verify_images` (eager mode: run it here, still in child processes).
    A broker that is down, or an eager run that fails, is logged and swallowed: the request that
    stored the items has committed, and the sweep comes back for what is still pending."""
    from labeling.tasks import items_verify_images

    try:
        items_verify_images.apply_async(args=[list(item_ids)], retry=False)
    except Exception:
        logger.exception("Could not start the verification of items %s; the sweep will retry it.", list(item_ids))
        return False
    return True


def item_images_verify_sweep() -> int:
    """Enqueue again the verification of uploads pending for longer than IMAGE_VERIFY_SWEEP_SECONDS
    (the message was lost, or its worker is gone); returns how many."""
    stale = timezone.now() - timedelta(seconds=settings.IMAGE_VERIFY_SWEEP_SECONDS)
    ids = _pending_upload_ids(created_before=stale)
    for start in range(0, len(ids), VERIFY_BATCH):
        item_images_verify_enqueue(item_ids=ids[start : start + VERIFY_BATCH])
    return len(ids)


def item_images_verify_pending(*, dataset_id: int | None = None) -> dict[str, int]:
    """Verify now, in this process's children, every upload still pending (of one dataset), however
    recent: `manage.py verify_images`, for eager mode, where no beat runs the sweep (an interrupted
    request leaves its uploads pending). A worker verifying the same item meanwhile is harmless:
    only the first verdict is stored. Returns how many passed and failed."""
    ids = _pending_upload_ids(dataset_id=dataset_id)
    totals = {str(Item.ImageCheck.OK): 0, str(Item.ImageCheck.FAILED): 0}
    for start in range(0, len(ids), VERIFY_BATCH):
        for state, count in item_images_verify(item_ids=ids[start : start + VERIFY_BATCH]).items():
            totals[state] += count
    return totals


def _pending_upload_ids(*, dataset_id: int | None = None, created_before=None) -> list[int]:
    pending = Item.objects.filter(image_check=Item.ImageCheck.PENDING)
    if dataset_id is not None:
        pending = pending.filter(dataset_id=dataset_id)
    if created_before is not None:
        pending = pending.filter(created_at__lt=created_before)
    return list(pending.order_by("id").values_list("id", flat=True))
