"""Items in Nucleus: checking a dataset's link, pulling the items of the linked Nucleus dataset into
ours, and appending ours to it before their annotations are synced.

No transaction is open while Nucleus is called: a pull reads a page, then stores it with the import
service (its own transaction, all or nothing per batch); a push sends a batch, then records in one
UPDATE which of its rows Nucleus took (only if the dataset is still linked to that Nucleus dataset,
under its row lock: a relink meanwhile forgot every mark). Appends use `update=False`, so a batch sent twice (a crash
between the answer and the UPDATE) changes nothing on Nucleus.
"""

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Prefetch
from django.utils import timezone

from labeling import nucleus
from labeling.errors import BatchInvalid, RowError
from labeling.models import Dataset, Item, Scene
from labeling.services.items import items_import, scenes_import
from labeling.services.sync import dataset_nucleus_link_hold, sync_blocker

# Rows stored per import transaction when pulling (one all-or-nothing batch each).
PULL_BATCH_SIZE = 1000
# Rows read per page of Nucleus's item list.
PULL_PAGE_SIZE = 10_000
# Items per append job when pushing; scenes go fewer at a time (each may carry 3000 frames).
PUSH_BATCH_SIZE = 1000
SCENES_PER_APPEND = 20
# Nucleus answers an unknown dataset id with one of these.
UNKNOWN_DATASET_STATUSES = frozenset({400, 404})

Progress = Callable[[int], None]


# --- Checking a link ----------------------------------------------------------------------------


def nucleus_link_check(*, nucleus_dataset_id: str, kind: str) -> str:
    """Ask Nucleus (`dataset.info()`) whether the dataset exists and is of the same kind (a scene
    dataset links to an is_scene one, and an images dataset to one that is not).

    Raises ValidationError on `nucleus_dataset_id` when Nucleus says no; returns a warning when the
    check could not run (no API key, Nucleus unreachable or refusing the key): the link is stored
    anyway, and the sync says why it waits. "" when checked, or when nothing is linked."""
    if not nucleus_dataset_id:
        return ""
    not_checked = f"nucleus_dataset_id {nucleus_dataset_id!r} was stored without checking it on Nucleus"
    if not settings.NUCLEUS_API_KEY:
        return f"{not_checked}: NUCLEUS_API_KEY is not set on the server."
    try:
        with nucleus.remote_dataset(nucleus_dataset_id) as remote:
            info = nucleus.dataset_info(remote)
    except nucleus.NucleusRefused as refusal:
        if refusal.status in UNKNOWN_DATASET_STATUSES:
            raise ValidationError(
                {"nucleus_dataset_id": f"Nucleus has no dataset {nucleus_dataset_id!r} that this API key can see ({refusal.message})"}
            ) from None
        return f"{not_checked}: {refusal.message}"
    except nucleus.NucleusUnavailable as fault:
        return f"{not_checked}: {fault.message}"
    wants_scenes = kind == Dataset.Kind.SCENES
    if info.is_scene != wants_scenes:
        theirs, ours = ("a scene dataset", "an images dataset") if info.is_scene else ("an images dataset", "a scene dataset")
        raise ValidationError(
            {"nucleus_dataset_id": f"{nucleus_dataset_id} ({info.name}) is {theirs} on Nucleus; this is {ours}."}
        )
    return ""


# --- Pulling ------------------------------------------------------------------------------------


@dataclass
class PullReport:
    """What a pull found and did. `refused` holds the problems of batches the import refused
    (nothing of such a batch was stored); `not_pullable` the scenes the export gives no video for."""

    found: int = 0
    imported: int = 0
    already_here: int = 0
    would_import: list[tuple[str, str]] = field(default_factory=list)  # (reference_id, URL), dry runs only
    refused: list[RowError] = field(default_factory=list)
    not_pullable: list[str] = field(default_factory=list)


def nucleus_items_pull(*, dataset: Dataset, dry_run: bool = False, progress: Progress | None = None) -> PullReport:
    """Import the linked Nucleus dataset's items (images datasets) or video scenes (scene datasets):
    reference_id, image or video URL, metadata. reference_ids we already have are skipped and
    counted. `progress` is called with the number of Nucleus rows handled so far.

    Scenes made of frames cannot be pulled: the SDK's scene export gives a scene's reference_id,
    metadata and video URL, not its frames; they are listed in `not_pullable`. The export has no
    frame rate either: pulled video scenes get 1 frame/s (playback of a video does not use it)."""
    report = PullReport()
    with nucleus.remote_dataset(dataset.nucleus_dataset_id) as remote:
        if dataset.kind == Dataset.Kind.SCENES:
            rows = nucleus.remote_scenes(remote)
        else:
            rows = nucleus.remote_items(remote, page_size=PULL_PAGE_SIZE)
        while batch := tuple(islice(rows, PULL_BATCH_SIZE)):
            _pull_batch(dataset=dataset, remote_id=remote.dataset_id, rows=batch, report=report, dry_run=dry_run)
            if progress is not None:
                progress(report.found)
    return report


def nucleus_pull_total(*, dataset: Dataset) -> int:
    """How many items and scenes the linked Nucleus dataset holds (`info().length`), for a progress bar."""
    with nucleus.remote_dataset(dataset.nucleus_dataset_id) as remote:
        return nucleus.dataset_info(remote).length


def _pull_batch(*, dataset: Dataset, remote_id: str, rows: tuple[nucleus.RemoteRow, ...], report: PullReport, dry_run: bool) -> None:
    offset = report.found
    report.found += len(rows)
    taken = _reference_ids_here(dataset=dataset, reference_ids=[row.reference_id for row in rows])
    wanted = []
    for position, row in enumerate(rows, start=offset):
        if row.reference_id in taken:
            report.already_here += 1
        elif dataset.kind == Dataset.Kind.SCENES and not row.location:
            report.not_pullable.append(row.reference_id)
        else:
            wanted.append((position, row))
    if dry_run:
        report.would_import.extend((row.reference_id, row.location) for _, row in wanted)
        return
    if not wanted:
        return
    try:
        stored = _import(dataset=dataset, rows=[row for _, row in wanted])
    except BatchInvalid as error:
        # Row indexes of the batch become positions in Nucleus's list, which the person can find.
        report.refused.extend(
            RowError(index=None if row.index is None else wanted[row.index][0], field=row.field, message=row.message)
            for row in error.rows
        )
        return
    # They are on Nucleus already: a push must not append them again.
    _uploaded_record(dataset=dataset, nucleus_dataset_id=remote_id, rows=stored)
    report.imported += len(stored)


def _import(*, dataset: Dataset, rows: list[nucleus.RemoteRow]) -> list[Item] | list[Scene]:
    if dataset.kind == Dataset.Kind.SCENES:
        scenes = [{"reference_id": row.reference_id, "video_url": row.location, "metadata": row.metadata} for row in rows]
        return scenes_import(dataset=dataset, rows=scenes)
    items = [{"reference_id": row.reference_id, "image_url": row.location, "metadata": row.metadata} for row in rows]
    return items_import(dataset=dataset, rows=items)


def _reference_ids_here(*, dataset: Dataset, reference_ids: list[str]) -> set[str]:
    """Which of these reference_ids the dataset's items, frames or scenes use (one query)."""
    items = Item.objects.filter(dataset=dataset, reference_id__in=reference_ids).order_by().values_list("reference_id", flat=True)
    scenes = Scene.objects.filter(dataset=dataset, reference_id__in=reference_ids).order_by().values_list("reference_id", flat=True)
    return set(items.union(scenes))


# --- Pushing ------------------------------------------------------------------------------------


@dataclass
class PushReport:
    blocked: str | None = None
    uploaded: int = 0
    failed: int = 0
    batches: int = 0
    would_upload: list[tuple[str, str]] = field(default_factory=list)  # (reference_id, URL), dry runs only
    errors: list[str] = field(default_factory=list)


def nucleus_items_pending_count(*, dataset: Dataset) -> int:
    """Items (not frames) or scenes of the dataset not appended to Nucleus yet."""
    return _not_uploaded(dataset).count()


def nucleus_items_push(
    *, dataset: Dataset, batch_size: int = PUSH_BATCH_SIZE, dry_run: bool = False, progress: Progress | None = None
) -> PushReport:
    """Append the dataset's items, or scenes (a video, or frames as items), that Nucleus does not
    have yet to the linked Nucleus dataset, batch after batch, and record `nucleus_uploaded_at` on
    each one Nucleus took. Call it before syncing annotations: Nucleus refuses an annotation whose
    reference_id it does not know. `progress` is called with the number of rows sent so far.

    Stops at the first batch Nucleus could not take (refused or unreachable): run it again later;
    what was recorded is not sent again. An uploaded image is given to Nucleus as
    PUBLIC_MEDIA_URL + its stored name; without that setting, a dataset with uploads is refused."""
    blocker = nucleus_items_push_blocker(dataset=dataset)
    if blocker:
        return PushReport(blocked=blocker)
    report = PushReport()
    sent = 0
    with nucleus.remote_dataset(dataset.nucleus_dataset_id) as remote:
        for rows in _batches_to_push(dataset, batch_size=batch_size):
            sent += len(rows)
            if dry_run:
                report.would_upload.extend((row.reference_id, _location(row)) for row in rows)
            elif not _push_batch(remote=remote, dataset=dataset, rows=rows, report=report):
                break
            if progress is not None:
                progress(sent)
    return report


def _not_uploaded(dataset: Dataset):
    # Served by the partial indexes labeling_item_not_on_nucleus / labeling_scene_not_on_nucleus.
    if dataset.kind == Dataset.Kind.SCENES:
        return Scene.objects.filter(dataset=dataset, nucleus_uploaded_at__isnull=True)
    return Item.objects.filter(dataset=dataset, scene__isnull=True, nucleus_uploaded_at__isnull=True)


def nucleus_items_push_blocker(*, dataset: Dataset) -> str | None:
    """Why nothing can be appended to Nucleus now, in words for the dataset's admin; None if it can."""
    return sync_blocker(dataset=dataset) or _uploads_blocker(dataset)


def _uploads_blocker(dataset: Dataset) -> str | None:
    if settings.PUBLIC_MEDIA_URL:
        return None
    if dataset.kind == Dataset.Kind.SCENES:
        waiting = Item.objects.filter(dataset=dataset, scene__nucleus_uploaded_at__isnull=True)
    else:
        waiting = _not_uploaded(dataset)
    if not waiting.exclude(image="").exists():
        return None
    return (
        "This dataset has uploaded images, which Nucleus can only fetch from a public URL: set "
        "PUBLIC_MEDIA_URL to where MEDIA_ROOT is served to anyone (a bucket, or a web server)."
    )


def _batches_to_push(dataset: Dataset, *, batch_size: int) -> Iterator[list[Item] | list[Scene]]:
    """The rows not on Nucleus yet, in id order, a batch at a time (read by key: a row that failed
    stays behind and is not read again in this run)."""
    rows = _not_uploaded(dataset).order_by("id")
    if dataset.kind == Dataset.Kind.SCENES:
        rows = rows.prefetch_related(Prefetch("frames", queryset=Item.objects.order_by("frame_index")))
        batch_size = max(1, min(batch_size, SCENES_PER_APPEND))
    after = 0
    while chunk := list(rows.filter(id__gt=after)[:batch_size]):
        yield chunk
        after = chunk[-1].id


def _location(row: Item | Scene) -> str:
    if isinstance(row, Scene):
        return row.video_url or f"{len(row.frames.all())} frames"
    return _image_url(row)


def _image_url(item: Item) -> str:
    return item.image_url or f"{settings.PUBLIC_MEDIA_URL.rstrip('/')}/{item.image.name}"


def _sdk_rows(rows: Iterable[Item | Scene]) -> list:
    def sdk_item(item: Item):
        return nucleus.sdk_item(reference_id=item.reference_id, image_url=_image_url(item), metadata=item.metadata)

    return [
        nucleus.sdk_scene(
            reference_id=row.reference_id,
            metadata=row.metadata,
            video_url=row.video_url,
            frame_rate=row.frame_rate,
            frames=[sdk_item(frame) for frame in row.frames.all()],
        )
        if isinstance(row, Scene)
        else sdk_item(row)
        for row in rows
    ]


def _push_batch(*, remote: nucleus.RemoteDataset, dataset: Dataset, rows: list[Item] | list[Scene], report: PushReport) -> bool:
    """Send one batch and record what Nucleus took; False when the run should stop."""
    report.batches += 1
    try:
        answer = nucleus.append(remote, _sdk_rows(rows))
    except nucleus.NucleusFault as fault:
        report.failed += len(rows)
        report.errors.append(fault.message)
        return False
    report.errors.extend(answer.errors)
    failed = _named_in(answer.errors, rows)
    if answer.errors and not failed:
        # Errors that name none of the rows: nobody can tell which ones Nucleus kept. None is
        # recorded; the next run sends them again, which changes nothing for those it has.
        report.failed += len(rows)
        return True
    taken = [row for row in rows if row.reference_id not in failed]
    if not _uploaded_record(dataset=dataset, nucleus_dataset_id=remote.dataset_id, rows=taken):
        report.failed += len(rows)
        report.errors.append(f"The dataset was linked to another Nucleus dataset than {remote.dataset_id} meanwhile: nothing recorded.")
        return False
    report.uploaded += len(taken)
    report.failed += len(rows) - len(taken)
    return True


def _uploaded_record(*, dataset: Dataset, nucleus_dataset_id: str, rows: list[Item] | list[Scene]) -> bool:
    """Mark these rows as on Nucleus, unless the dataset was linked to another Nucleus dataset than
    the one they went to meanwhile (False): the link change forgot every mark, and these are about
    the old dataset."""
    if not rows:
        return True
    with transaction.atomic():
        if not dataset_nucleus_link_hold(dataset_id=dataset.id, nucleus_dataset_id=nucleus_dataset_id):
            return False
        not_marked = type(rows[0]).objects.filter(id__in=[row.id for row in rows], nucleus_uploaded_at__isnull=True)
        not_marked.update(nucleus_uploaded_at=timezone.now())
    return True


def _named_in(errors: list[str], rows: Iterable[Item | Scene]) -> set[str]:
    """The rows' reference_ids that some error names as a whole word (`image_1` is not named by `image_10`)."""
    if not errors:
        return set()
    text = "\n".join(errors)
    return {
        row.reference_id
        for row in rows
        if row.reference_id in text and re.search(rf"(?<![\w.-]){re.escape(row.reference_id)}(?![\w-]|\.\w)", text)
    }
