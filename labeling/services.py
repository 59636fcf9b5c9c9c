"""Writes to datasets, members, items, scenes and annotations.

Every write validates with `full_clean()` (which also runs the named database constraints' checks,
so a bad row gets a readable message) before it touches the database, and every multi-row write is
one transaction: a bad input stores nothing.
"""

from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.core.files.base import File
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from labeling.images import read_image
from labeling.models import (
    MAX_FRAMES_PER_SCENE,
    AnnotationLabel,
    CategoryAnnotation,
    Dataset,
    DatasetMember,
    Item,
    Scene,
)
from labeling.validators import validate_metadata
from taxonomies.models import Label, Taxonomy
from taxonomies.services import label_delete


def dataset_create(*, name: str, kind: str, nucleus_dataset_id: str = "", created_by=None) -> Dataset:
    """Create a dataset; its creator, if given, becomes its first admin."""
    dataset = Dataset(name=name, kind=kind, nucleus_dataset_id=nucleus_dataset_id)
    dataset.full_clean()
    with transaction.atomic():
        dataset.save()
        if created_by is not None:
            DatasetMember.objects.create(dataset=dataset, user=created_by, role=DatasetMember.Role.ADMIN)
    return dataset


def dataset_member_set(*, dataset: Dataset, user, role: str) -> DatasetMember:
    """Give a user a role in a dataset, adding them as a member if they are not one yet."""
    member = DatasetMember(dataset=dataset, user=user, role=role)
    member.full_clean(validate_constraints=False)
    member, _ = DatasetMember.objects.update_or_create(dataset=dataset, user=user, defaults={"role": role})
    return member


def item_create(
    *,
    dataset: Dataset,
    reference_id: str,
    image_file: File | None = None,
    image_url: str = "",
    metadata: dict | None = None,
) -> Item:
    """Add an image to an images dataset, uploaded (read and checked with Pillow) or by URL."""
    if dataset.kind != Dataset.Kind.IMAGES:
        raise ValidationError({"reference_id": "A scene dataset holds scenes; add the image as a frame of a scene."})
    draft = _item_draft(
        dataset=dataset,
        row={"reference_id": reference_id, "image_file": image_file, "image_url": image_url, "metadata": metadata},
    )
    draft.item.full_clean(exclude=["image"])
    _check_reference_ids_free(dataset=dataset, item_ids=[reference_id], scene_ids=[])
    with _uploads_stored([draft]):
        draft.item.save()
    return draft.item


def scene_create(
    *,
    dataset: Dataset,
    reference_id: str,
    frame_rate: float,
    frames: Sequence[dict] = (),
    video_url: str = "",
    metadata: dict | None = None,
) -> Scene:
    """Add a scene: a video URL, or an ordered list of frames (each `{"reference_id", "image_url"}`
    or `{"reference_id", "image_file"}`, optionally with `metadata`), all stored or none."""
    if dataset.kind != Dataset.Kind.SCENES:
        raise ValidationError({"reference_id": "Scenes go in a scene dataset; this one holds images."})
    if bool(video_url) == bool(frames):
        raise ValidationError({"frames": "A scene has either a video_url or a list of frames, not both or neither."})
    if len(frames) > MAX_FRAMES_PER_SCENE:
        raise ValidationError(
            {"frames": f"A scene holds at most {MAX_FRAMES_PER_SCENE} frames; this one has {len(frames)}."}
        )
    scene = Scene(
        dataset=dataset,
        reference_id=reference_id,
        video_url=video_url,
        frame_rate=frame_rate,
        metadata={} if metadata is None else metadata,
    )
    scene.full_clean()
    drafts, errors = [], []
    for index, frame in enumerate(frames):
        try:
            draft = _item_draft(dataset=dataset, row=frame, frame_index=index)
            draft.item.full_clean(exclude=["image", "scene"], validate_constraints=False)
            drafts.append(draft)
        except ValidationError as error:
            errors.extend(f"frames[{index}]: {message}" for message in error.messages)
    frame_ids = [draft.item.reference_id for draft in drafts]
    repeated = sorted({ref for ref in frame_ids if frame_ids.count(ref) > 1} | ({reference_id} & set(frame_ids)))
    if repeated:
        errors.append(f"reference_ids must be unique in the scene; repeated: {', '.join(repeated)}.")
    if errors:
        raise ValidationError({"frames": errors})
    _check_reference_ids_free(dataset=dataset, item_ids=frame_ids, scene_ids=[reference_id])
    with _uploads_stored(drafts), transaction.atomic():
        scene.save()
        for draft in drafts:
            draft.item.scene = scene
        Item.objects.bulk_create([draft.item for draft in drafts])
    return scene


@dataclass
class _ItemDraft:
    """An item validated but not stored yet, with its upload (checked, not yet written)."""

    item: Item
    upload: File | None = None
    extension: str = ""


def _item_draft(*, dataset: Dataset, row: dict, frame_index: int | None = None) -> _ItemDraft:
    upload, image_url = row.get("image_file"), row.get("image_url") or ""
    if upload is not None and image_url:
        raise ValidationError({"image_url": "Give either an uploaded image or an image_url, not both."})
    if upload is None and not image_url:
        raise ValidationError({"image_url": "An item needs an uploaded image or an image_url."})
    metadata = row.get("metadata")
    item = Item(
        dataset=dataset,
        reference_id=row.get("reference_id") or "",
        image_url=image_url,
        metadata={} if metadata is None else metadata,
        frame_index=frame_index,
    )
    if upload is None:
        return _ItemDraft(item=item)
    info = read_image(upload)
    item.width, item.height = info.width, info.height
    return _ItemDraft(item=item, upload=upload, extension=info.extension)


@contextmanager
def _uploads_stored(drafts: Sequence[_ItemDraft]):
    """Write the drafts' uploads to storage before their rows, outside any transaction, and delete
    them again if the rows do not get stored, so a failed batch leaves no orphaned files."""
    stored: list[Item] = []
    try:
        for draft in drafts:
            if draft.upload is not None:
                # Only the detected format's extension survives; uploaded_image_path picks the name.
                draft.item.image.save(f"upload{draft.extension}", draft.upload, save=False)
                stored.append(draft.item)
        yield
    except BaseException:
        for item in stored:
            item.image.storage.delete(item.image.name)
        raise


def _check_reference_ids_free(*, dataset: Dataset, item_ids: Sequence[str], scene_ids: Sequence[str]) -> None:
    """reference_ids are unique across a dataset's items and scenes together: Nucleus resolves a
    reference_id to whichever of the two has it."""
    taken = set(
        Item.objects.filter(dataset=dataset, reference_id__in=[*item_ids, *scene_ids]).values_list("reference_id", flat=True)
    ) | set(
        Scene.objects.filter(dataset=dataset, reference_id__in=[*item_ids, *scene_ids]).values_list("reference_id", flat=True)
    )
    if taken:
        raise ValidationError(
            {"reference_id": f"Already used in this dataset: {', '.join(sorted(taken))}."}
        )


@dataclass(frozen=True)
class AnnotationSaved:
    annotation: CategoryAnnotation
    changed: bool


def annotation_save(
    *,
    target: Item | Scene,
    taxonomy: Taxonomy,
    labels: Sequence[Label],
    annotator,
    finished: bool,
    metadata: dict | None = None,
) -> AnnotationSaved:
    """Store the label(s) chosen for an item or scene in one taxonomy.

    A finished annotation whose labels or metadata change gets a new version and goes back to the
    sync's pending state, in the same transaction as the change. Saving the same answer again
    changes nothing (and is reported as unchanged).
    """
    metadata = {} if metadata is None else metadata
    _check_answer(target=target, taxonomy=taxonomy, labels=labels, finished=finished, metadata=metadata)
    target_lookup = {"item": target} if isinstance(target, Item) else {"scene": target}
    with transaction.atomic():
        annotation, created = _annotation_get_or_create_locked(taxonomy=taxonomy, target_lookup=target_lookup)
        new_label_ids = {label.id for label in labels}
        old_label_ids = (
            set(annotation.chosen.values_list("label_id", flat=True))
            if taxonomy.multi_label
            else {annotation.label_id} - {None}
        )
        if annotation.is_finished and not finished:
            raise ValidationError(
                {"status": "This annotation is already finished; submit the change as finished."}
            )
        content_changed = new_label_ids != old_label_ids or metadata != annotation.metadata
        if not content_changed and annotation.is_finished == finished and not created:
            return AnnotationSaved(annotation=annotation, changed=False)

        if taxonomy.multi_label:
            AnnotationLabel.objects.filter(annotation=annotation).exclude(label_id__in=new_label_ids).delete()
            AnnotationLabel.objects.bulk_create(
                [
                    AnnotationLabel(annotation=annotation, label_id=label_id, taxonomy=taxonomy)
                    for label_id in new_label_ids - old_label_ids
                ]
            )
        else:
            annotation.label = labels[0] if labels else None
        was_finished = annotation.is_finished
        annotation.metadata = metadata
        annotation.annotator = annotator
        if finished:
            annotation.status = CategoryAnnotation.Status.FINISHED
            annotation.finished_at = annotation.finished_at or timezone.now()
            _mark_for_sync(annotation, new_version=was_finished and content_changed)
        annotation.save()
        annotation.refresh_from_db(fields=["version"])
    return AnnotationSaved(annotation=annotation, changed=True)


def _check_answer(*, target, taxonomy: Taxonomy, labels: Sequence[Label], finished: bool, metadata: dict) -> None:
    if target.dataset_id != taxonomy.dataset_id:
        raise ValidationError({"taxonomy_name": f"“{taxonomy.taxonomy_name}” is not a taxonomy of this dataset."})
    if isinstance(target, Item) and not taxonomy.applies_to_items():
        raise ValidationError({"taxonomy_name": f"“{taxonomy.taxonomy_name}” applies to scenes, not items."})
    if isinstance(target, Scene) and not taxonomy.applies_to_scenes():
        raise ValidationError({"taxonomy_name": f"“{taxonomy.taxonomy_name}” applies to items, not scenes."})
    foreign = [label.name for label in labels if label.taxonomy_id != taxonomy.id]
    if foreign:
        raise ValidationError(
            {"label": f"Not a label of “{taxonomy.taxonomy_name}”: {', '.join(foreign)}."}
        )
    if len({label.id for label in labels}) != len(labels):
        raise ValidationError({"labels": "A label is chosen more than once."})
    if not taxonomy.multi_label and len(labels) > 1:
        raise ValidationError(
            {"label": f"“{taxonomy.taxonomy_name}” is a single-label taxonomy: choose one label, not {len(labels)}."}
        )
    if finished and not taxonomy.multi_label and not labels:
        raise ValidationError({"label": f"Choose a label for “{taxonomy.taxonomy_name}”."})
    try:
        validate_metadata(metadata)
    except ValidationError as error:
        raise ValidationError({"metadata": error.messages}) from None


def _annotation_get_or_create_locked(*, taxonomy: Taxonomy, target_lookup: dict) -> tuple[CategoryAnnotation, bool]:
    """Return the (item or scene, taxonomy) annotation, locked, and whether it was just created.

    Caller must be inside `transaction.atomic()`. Two concurrent first saves race on the unique
    constraint: the loser's insert fails inside its savepoint and it re-reads the winner's row.
    """
    locked = CategoryAnnotation.objects.select_for_update()
    existing = locked.filter(taxonomy=taxonomy, **target_lookup).first()
    if existing is not None:
        return existing, False
    (target,) = target_lookup.values()
    annotation = CategoryAnnotation(dataset_id=target.dataset_id, taxonomy=taxonomy, **target_lookup)
    try:
        with transaction.atomic():
            annotation.save()
    except IntegrityError:
        return locked.get(taxonomy=taxonomy, **target_lookup), False
    return annotation, True


def _mark_for_sync(annotation: CategoryAnnotation, *, new_version: bool) -> None:
    """Outbox bookkeeping for a finished annotation whose content Nucleus does not have yet."""
    if new_version:
        annotation.version = F("version") + 1
    annotation.sync_state = CategoryAnnotation.SyncState.PENDING
    annotation.sync_attempts = 0
    annotation.sync_next_attempt_at = None
    annotation.sync_error = ""


@dataclass(frozen=True)
class LabelRemoval:
    relabelled_finished: int
    relabelled_drafts: int


def label_remove(*, label: Label, relabel_to: Label | None = None, drop_from_annotations: bool = False) -> LabelRemoval:
    """Remove a label from its taxonomy, moving the annotations that use it.

    Finished annotations that use the label are the labelers' work, so removing it needs an
    explicit decision: `relabel_to` another label of the taxonomy, or (multi-label taxonomies only)
    `drop_from_annotations` to take it out of their chosen sets. Each relabelled finished annotation
    gets a new version for the sync. Drafts follow the same decision; with none given, a draft just
    loses the label.
    """
    taxonomy = label.taxonomy
    if relabel_to is not None and (relabel_to.taxonomy_id != taxonomy.id or relabel_to.id == label.id):
        raise ValidationError({"relabel_to": "Relabel to another label of the same taxonomy."})
    if drop_from_annotations and not taxonomy.multi_label:
        raise ValidationError(
            {"relabel_to": "A single-label annotation cannot be left without a label: choose a label to relabel to."}
        )
    with transaction.atomic():
        if taxonomy.multi_label:
            used = CategoryAnnotation.objects.filter(chosen__label=label)
        else:
            used = CategoryAnnotation.objects.filter(label=label)
        finished_ids = list(used.filter(status=CategoryAnnotation.Status.FINISHED).values_list("id", flat=True))
        draft_ids = list(used.filter(status=CategoryAnnotation.Status.DRAFT).values_list("id", flat=True))
        if finished_ids and relabel_to is None and not drop_from_annotations:
            raise ValidationError(
                {
                    "relabel_to": f"“{label.name}” is used by {len(finished_ids)} finished annotation(s): "
                    "choose a label to relabel them to"
                    + (", or confirm removing it from them." if taxonomy.multi_label else ".")
                },
                code="label_in_use",
            )
        if taxonomy.multi_label:
            if relabel_to is not None:
                AnnotationLabel.objects.bulk_create(
                    [
                        AnnotationLabel(annotation_id=annotation_id, label=relabel_to, taxonomy=taxonomy)
                        for annotation_id in finished_ids + draft_ids
                    ],
                    ignore_conflicts=True,
                )
            AnnotationLabel.objects.filter(label=label).delete()
        else:
            CategoryAnnotation.objects.filter(id__in=finished_ids + draft_ids).update(label=relabel_to)
        CategoryAnnotation.objects.filter(id__in=finished_ids).update(
            version=F("version") + 1,
            sync_state=CategoryAnnotation.SyncState.PENDING,
            sync_attempts=0,
            sync_next_attempt_at=None,
            sync_error="",
            updated_at=timezone.now(),
        )
        label_delete(label=label)
    return LabelRemoval(relabelled_finished=len(finished_ids), relabelled_drafts=len(draft_ids))

