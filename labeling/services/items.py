"""Adding items and scenes, one at a time or in batches of any size.

A batch is all or nothing: every row is checked first (each problem reported with the row's index
and field), then the rows are inserted in bulk in one transaction, with their queue tasks. Uploads
are checked from their headers only (format, size, the pixel caps), written to storage outside the
transaction and removed again if the rows do not get stored, so a failed batch leaves no orphaned
files. A stored upload is pending verification and its task waits until a child process has
decoded it (labeling.services.images), started once the rows are committed.
"""

import re
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import File
from django.core.validators import MaxLengthValidator, URLValidator
from django.db import connection, models, transaction

from labeling.errors import BatchInvalid, RowError, row_errors_from
from labeling.images import read_image
from labeling.models import MAX_FRAMES_PER_SCENE, Dataset, Item, Scene, Task, http_url_validator
from labeling.services.images import item_images_verify_request
from labeling.validators import validate_metadata, validate_reference_id

ITEM_ROW_FIELDS = frozenset({"reference_id", "image_url", "image_file", "metadata"})
SCENE_ROW_FIELDS = frozenset({"reference_id", "frame_rate", "frames", "video_url", "metadata"})
INSERT_CHUNK = 2000
# reference_ids looked up in one query (an IN list of this many parameters).
REFERENCE_ID_CHUNK = 5000
# A batch with more bad rows than this reports the first ones and how many more there are.
MAX_REPORTED_ERRORS = 1000

Progress = Callable[[int], None]


def item_create(
    *,
    dataset: Dataset,
    reference_id: str,
    image_file: File | None = None,
    image_url: str = "",
    metadata: dict | None = None,
) -> Item:
    """Add one image, uploaded (its header checked now, its pixels once committed) or by URL."""
    row = {"reference_id": reference_id, "image_file": image_file, "image_url": image_url, "metadata": metadata}
    (item,) = items_import(dataset=dataset, rows=[row])
    return item


def items_import(*, dataset: Dataset, rows: Sequence[dict], progress: Progress | None = None) -> list[Item]:
    """Add images to an images dataset from `{"reference_id", "image_url" | "image_file", "metadata"}`
    rows. `progress` is called with the number of rows stored so far."""
    if dataset.kind != Dataset.Kind.IMAGES:
        raise ValidationError({"reference_id": "A scene dataset holds scenes; add images as frames of a scene."})
    drafts, errors = [], []
    for index, row in enumerate(rows):
        draft, row_errors = _item_draft(dataset=dataset, row=row, index=index)
        errors.extend(row_errors)
        if draft is not None:
            drafts.append(draft)
    errors.extend(_reference_id_errors(dataset=dataset, named=[(d.index, "reference_id", d.item.reference_id) for d in drafts]))
    errors.extend(_request_pixel_errors(drafts))
    _raise_if_any(errors)
    items = [draft.item for draft in drafts]
    with _uploads_stored(drafts):
        for start in range(0, len(items), INSERT_CHUNK):
            chunk = Item.objects.bulk_create(items[start : start + INSERT_CHUNK])
            _item_tasks_create(item_ids=[item.id for item in chunk])
            if progress is not None:
                progress(start + len(chunk))
        item_images_verify_request(item_ids=[item.id for item in items if item.image_check == Item.ImageCheck.PENDING])
    return items


def _item_tasks_create(*, item_ids: Sequence[int]) -> None:
    """One queue task per item, written by the database from the item rows (INSERT ... SELECT):
    building and serializing 100k Task instances was a third of a 100k-row import. It is open, or
    waiting while its item's upload is pending verification. The other columns of a new task are
    NULL (no holder, no lease, not done); the ids are those of the chunk just inserted, never a
    range, so a concurrent import's rows are not touched."""
    task, item = Task._meta, Item._meta
    column = {name: connection.ops.quote_name(task.get_field(name).column) for name in ("dataset", "item", "state")}
    image_check = connection.ops.quote_name(item.get_field("image_check").column)
    placeholders = ", ".join(["%s"] * len(item_ids))
    sql = (
        f"INSERT INTO {connection.ops.quote_name(task.db_table)} ({column['dataset']}, {column['item']}, {column['state']}) "
        f"SELECT {connection.ops.quote_name(item.get_field('dataset').column)}, {connection.ops.quote_name(item.pk.column)}, "
        f"CASE WHEN {image_check} = %s THEN %s ELSE %s END "
        f"FROM {connection.ops.quote_name(item.db_table)} WHERE {connection.ops.quote_name(item.pk.column)} IN ({placeholders})"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [Item.ImageCheck.PENDING, Task.State.WAITING, Task.State.OPEN, *item_ids])


def scene_create(
    *,
    dataset: Dataset,
    reference_id: str,
    frame_rate: float,
    frames: Sequence[dict] = (),
    video_url: str = "",
    metadata: dict | None = None,
) -> Scene:
    """Add one scene: a video URL, or an ordered list of frames (each `{"reference_id",
    "image_url" | "image_file", "metadata"}`)."""
    row = {"reference_id": reference_id, "frame_rate": frame_rate, "frames": list(frames), "video_url": video_url, "metadata": metadata}
    (scene,) = scenes_import(dataset=dataset, rows=[row])
    return scene


def scenes_import(*, dataset: Dataset, rows: Sequence[dict]) -> list[Scene]:
    """Add scenes to a scene dataset from `{"reference_id", "frame_rate", "frames" | "video_url",
    "metadata"}` rows, all or none."""
    if dataset.kind != Dataset.Kind.SCENES:
        raise ValidationError({"reference_id": "Scenes go in a scene dataset; this one holds images."})
    scenes, frame_drafts, errors = [], [], []
    named: list[tuple[int, str, str]] = []
    for index, row in enumerate(rows):
        scene, frames, row_errors = _scene_draft(dataset=dataset, row=row, index=index)
        errors.extend(row_errors)
        if scene is not None:
            scenes.append((scene, frames))
            named.append((index, "reference_id", scene.reference_id))
            named.extend((index, f"frames[{f.item.frame_index}].reference_id", f.item.reference_id) for f in frames)
            frame_drafts.extend(frames)
    errors.extend(_reference_id_errors(dataset=dataset, named=named))
    errors.extend(_request_pixel_errors(frame_drafts))
    _raise_if_any(errors)
    with _uploads_stored(frame_drafts):
        stored = Scene.objects.bulk_create([scene for scene, _ in scenes])
        # A scene with an uploaded frame waits until all its frames are verified.
        Task.objects.bulk_create(
            [
                Task(dataset=dataset, scene=scene, state=Task.State.WAITING if any(f.upload is not None for f in frames) else Task.State.OPEN)
                for scene, frames in scenes
            ]
        )
        for scene, frames in scenes:
            for frame in frames:
                frame.item.scene = scene
        Item.objects.bulk_create([frame.item for frame in frame_drafts], batch_size=INSERT_CHUNK)
        item_images_verify_request(item_ids=[f.item.id for f in frame_drafts if f.item.image_check == Item.ImageCheck.PENDING])
    return stored


@dataclass
class _ItemDraft:
    """An item checked but not stored yet, with its upload (checked, not yet written)."""

    index: int
    item: Item
    upload: File | None = None
    extension: str = ""
    field_prefix: str = ""


def _item_draft(
    *, dataset: Dataset, row, index: int, field_prefix: str = "", frame_index: int | None = None
) -> tuple[_ItemDraft | None, list[RowError]]:
    def errors(field: str, message: str) -> tuple[None, list[RowError]]:
        return None, [RowError(index=index, field=f"{field_prefix}{field}", message=message)]

    if not isinstance(row, dict):
        return errors("", "Each row is a JSON object.")
    unknown = sorted(set(row) - ITEM_ROW_FIELDS)
    if unknown:
        return errors(unknown[0], f"Unknown field; a row has {', '.join(sorted(ITEM_ROW_FIELDS - {'image_file'}))}.")
    upload, image_url = row.get("image_file"), row.get("image_url") or ""
    if upload is not None and image_url:
        return errors("image_url", "Give either an uploaded image or an image_url, not both.")
    if upload is None and not image_url:
        return errors("image_url", "An item needs an uploaded image or an image_url.")
    metadata = {} if row.get("metadata") is None else row.get("metadata")
    item = Item(
        dataset=dataset, reference_id=row.get("reference_id"), image_url=image_url, metadata=metadata, frame_index=frame_index
    )
    found = _field_errors(item, ["reference_id", "image_url", "metadata"], index=index, field_prefix=field_prefix)
    if found:
        return None, found
    if upload is None:
        return _ItemDraft(index=index, item=item), []
    try:
        info = read_image(upload)
    except ValidationError as error:
        return errors("image_file", error.messages[0])
    # The header's size for now; the verification replaces it with the decoded one.
    item.width, item.height, item.image_check = info.width, info.height, Item.ImageCheck.PENDING
    return _ItemDraft(index=index, item=item, upload=upload, extension=info.extension, field_prefix=field_prefix), []


def _scene_draft(*, dataset: Dataset, row, index: int) -> tuple[Scene | None, list[_ItemDraft], list[RowError]]:
    def errors(field: str, message: str) -> tuple[None, list, list[RowError]]:
        return None, [], [RowError(index=index, field=field, message=message)]

    if not isinstance(row, dict):
        return errors("", "Each row is a JSON object.")
    unknown = sorted(set(row) - SCENE_ROW_FIELDS)
    if unknown:
        return errors(unknown[0], f"Unknown field; a scene has {', '.join(sorted(SCENE_ROW_FIELDS))}.")
    frames, video_url = row.get("frames") or [], row.get("video_url") or ""
    if not isinstance(frames, list):
        return errors("frames", "frames is a list of {reference_id, image_url} objects.")
    if bool(video_url) == bool(frames):
        return errors("frames", "A scene has either a video_url or a list of frames, not both or neither.")
    if len(frames) > MAX_FRAMES_PER_SCENE:
        return errors("frames", f"A scene holds at most {MAX_FRAMES_PER_SCENE} frames; this one has {len(frames)}.")
    scene = Scene(
        dataset=dataset,
        reference_id=row.get("reference_id"),
        video_url=video_url,
        frame_rate=row.get("frame_rate", 1.0),
        metadata={} if row.get("metadata") is None else row.get("metadata"),
    )
    found = _field_errors(scene, ["reference_id", "video_url", "frame_rate", "metadata"], index=index, field_prefix="")
    drafts = []
    for frame_index, frame in enumerate(frames):
        draft, frame_errors = _item_draft(
            dataset=dataset, row=frame, index=index, field_prefix=f"frames[{frame_index}].", frame_index=frame_index
        )
        found.extend(frame_errors)
        if draft is not None:
            drafts.append(draft)
    return (None, [], found) if found else (scene, drafts, [])


def _field_errors(instance, fields: list[str], *, index: int, field_prefix: str) -> list[RowError]:
    """The model's own field checks (types, lengths, URL schemes, finite metadata) on these fields:
    what `full_clean(exclude=<the other fields>, validate_unique=False, validate_constraints=False)`
    runs, without its per-row uniqueness queries (a batch checks reference_ids in bulk instead) and
    without walking every field of the model 100k times. Same order, same messages."""
    errors = {}
    for field in instance._meta.fields:
        if field.name not in fields:
            continue
        raw_value = getattr(instance, field.attname)
        # As Model.clean_fields: an empty value of a field that may be blank is not checked.
        if field.blank and raw_value in field.empty_values:
            continue
        try:
            setattr(instance, field.attname, _field_clean(field, raw_value, instance))
        except ValidationError as error:
            errors[field.name] = error.error_list
    if errors:
        return [
            RowError(index=row.index, field=f"{field_prefix}{row.field}", message=row.message)
            for row in row_errors_from(ValidationError(errors), index=index, default_field="")
        ]
    if isinstance(instance.reference_id, str) and not instance.reference_id.strip():
        return [RowError(index=index, field=f"{field_prefix}reference_id", message="reference_id cannot be empty.")]
    try:
        validate_reference_id(instance.reference_id)
    except ValidationError as error:
        return [RowError(index=index, field=f"{field_prefix}reference_id", message=error.messages[0])]
    return []


def _field_clean(field, value, instance):
    """`field.clean(value, instance)`, skipped when a cheaper check already proves it would pass
    and return the value unchanged (the common case, a valid row). Any value the cheaper check
    refuses goes through `field.clean`, so a bad row gets exactly full_clean's messages."""
    sufficient = _sufficient_check(field)
    if sufficient is not None:
        try:
            if sufficient(value):
                return value
        except ValidationError:
            pass
    return field.clean(value, instance)


@cache
def _sufficient_check(field) -> Callable[[object], bool] | None:
    """A check whose success (True, no ValidationError) proves that `field.clean` would pass and
    return the value unchanged; for the two checks that cost most in a 100k-row import, None for
    the other fields.

    - image_url / video_url carry two URLValidators that differ only in their schemes, Django's
      default (http, https, ftp, ftps) and `http_url_validator` (http, https), and a max-length
      check: a string of allowed length that `http_url_validator` accepts, the default accepts
      too, so one regex run instead of two.
    - metadata: JSONField.validate only checks that json.dumps succeeds, which its only
      validator, the stricter `validate_metadata` (a dict, allow_nan=False), already proves.
    The premises are read from the field itself, so a validator or rule added to it later turns
    the shortcut off instead of being skipped.
    """
    # With these, Field.validate refuses nothing but None, and to_python returns a str or any
    # JSON value as it is.
    if not (field.editable and field.blank and field.choices is None):
        return None
    if (
        isinstance(field, models.URLField)
        and http_url_validator in field.validators
        and all(_implied_by_http_url_validator(validator, field) for validator in field.validators)
    ):

        def url_check(value) -> bool:
            if not isinstance(value, str) or len(value) > field.max_length:
                return False
            http_url_validator(value)
            return True

        return url_check
    if isinstance(field, models.JSONField) and field.validators == [validate_metadata] and field.encoder is None:

        def metadata_check(value) -> bool:
            validate_metadata(value)
            return True

        return metadata_check
    return None


def _implied_by_http_url_validator(validator, field) -> bool:
    if isinstance(validator, MaxLengthValidator):
        return validator.limit_value == field.max_length
    return (
        type(validator) is URLValidator
        and validator.regex.pattern == http_url_validator.regex.pattern
        and validator.regex.flags == http_url_validator.regex.flags
        and validator.inverse_match == http_url_validator.inverse_match
        and validator.max_length >= http_url_validator.max_length
        and validator.unsafe_chars <= http_url_validator.unsafe_chars
        and set(http_url_validator.schemes) <= set(validator.schemes)
    )


def _reference_id_errors(*, dataset: Dataset, named: list[tuple[int, str, str]]) -> list[RowError]:
    """reference_ids must be unique across the dataset's items, frames and scenes together (Nucleus
    resolves a reference_id to whichever has it): within the batch, and against what is stored."""
    counts = Counter(reference_id for _, _, reference_id in named)
    taken = _reference_ids_taken(dataset=dataset, reference_ids=list(counts))
    errors = []
    for index, field, reference_id in named:
        if reference_id in taken:
            errors.append(RowError(index=index, field=field, message=f"{reference_id!r} is already used in this dataset."))
        elif counts[reference_id] > 1:
            errors.append(RowError(index=index, field=field, message=f"{reference_id!r} appears more than once in this batch."))
    return errors


def _reference_ids_taken(*, dataset: Dataset, reference_ids: list[str]) -> set[str]:
    """The reference_ids among these that the dataset's items or scenes already use: looked up
    REFERENCE_ID_CHUNK at a time, or, for a batch of more than that which names more rows than the
    dataset holds (a first import of a big file), by reading all of the dataset's reference_ids
    once. Building IN lists of 100k parameters costs more than reading a smaller dataset whole."""
    models = (Item, Scene)
    if len(reference_ids) > REFERENCE_ID_CHUNK:
        stored = sum(model.objects.filter(dataset=dataset).count() for model in models)
        if stored <= len(reference_ids):
            wanted = set(reference_ids)
            return {
                reference_id
                for model in models
                for reference_id in model.objects.filter(dataset=dataset).values_list("reference_id", flat=True).iterator()
                if reference_id in wanted
            }
    taken: set[str] = set()
    for start in range(0, len(reference_ids), REFERENCE_ID_CHUNK):
        wanted_chunk = reference_ids[start : start + REFERENCE_ID_CHUNK]
        for model in models:
            taken.update(model.objects.filter(dataset=dataset, reference_id__in=wanted_chunk).values_list("reference_id", flat=True))
    return taken


def _request_pixel_errors(drafts: Sequence[_ItemDraft]) -> list[RowError]:
    """The uploads of one call together within MAX_IMAGE_PIXELS_PER_REQUEST: each is decoded once
    by a verification child, so this bounds the work one request can cause. Names the first row
    past the cap."""
    total, limit = 0, settings.MAX_IMAGE_PIXELS_PER_REQUEST
    for draft in drafts:
        if draft.upload is None:
            continue
        total += draft.item.width * draft.item.height
        if total > limit:
            message = f"The images up to this one have {total} pixels together; one request may carry {limit}. Send the rest in another request."
            return [RowError(index=draft.index, field=f"{draft.field_prefix}image_file", message=message)]
    return []


def _raise_if_any(errors: list[RowError]) -> None:
    if not errors:
        return
    if len(errors) > MAX_REPORTED_ERRORS:
        more = len(errors) - MAX_REPORTED_ERRORS
        errors = [*errors[:MAX_REPORTED_ERRORS], RowError(index=None, field="", message=f"... and {more} more errors.")]
    raise BatchInvalid(errors)


_MORE_ERRORS = re.compile(r"\.\.\. and (\d+) more errors\.")


def batch_problem_count(error: BatchInvalid) -> int:
    """How many problems a refused batch had, counting those past the MAX_REPORTED_ERRORS listed."""
    last = error.rows[-1] if error.rows else None
    found = _MORE_ERRORS.fullmatch(last.message) if last is not None and last.index is None else None
    return len(error.rows) - 1 + int(found[1]) if found else len(error.rows)


@contextmanager
def _uploads_stored(drafts: Sequence[_ItemDraft]) -> Iterator[None]:
    """Write the drafts' uploads to storage before their rows, outside any transaction, then run
    the block in `atomic()`; delete the uploads again if the rows do not get stored."""
    stored: list[Item] = []
    try:
        for draft in drafts:
            if draft.upload is not None:
                # Only the detected format's extension survives; uploaded_image_path picks the name.
                draft.item.image.save(f"upload{draft.extension}", draft.upload, save=False)
                stored.append(draft.item)
        with transaction.atomic():
            # The first callback of the commit: once the rows are committed their files stay, even
            # if a later callback (the eager verification) is interrupted (Ctrl-C, a worker timeout).
            if stored:
                transaction.on_commit(stored.clear)
            yield
    except BaseException:
        for item in stored:
            item.image.storage.delete(item.image.name)
        raise
