"""Datasets, their members, items, scenes and category annotations.

Invariants live in the database as named constraints (`labeling_<model>_<rule>`). Where a rule spans
a relation (an annotation's label must be a label of its taxonomy; its item, scene and taxonomy must be
in its dataset; a frame must be in its scene's dataset) the key is copied onto the row and a
`CompositeForeignKey` makes the database check the pair.
"""

import uuid
from pathlib import PurePosixPath

from django.conf import settings
from django.core.validators import MinValueValidator, URLValidator
from django.db import models
from django.db.models import F, Q

from labeling.constraints import CompositeForeignKey
from labeling.validators import validate_metadata
from taxonomies.models import Label, Taxonomy

# Nucleus's limit for one video scene.
MAX_FRAMES_PER_SCENE = 3000

http_url_validator = URLValidator(schemes=["http", "https"], message="Only http and https URLs are accepted.")


class ReferenceIdQuerySet(models.QuerySet):
    def get_by_natural_key(self, dataset_id: int, reference_id: str):
        return self.get(dataset_id=dataset_id, reference_id=reference_id)


def dataset_member_constraints(*, model_name: str, noun: str) -> list[models.BaseConstraint]:
    """What items and scenes share as rows of a dataset known by reference_id: the reference_id is
    unique in the dataset and not blank, and (id, dataset) is a key that annotations' and frames'
    composite keys point at to prove they are in the same dataset."""
    return [
        models.UniqueConstraint(fields=["id", "dataset"], name=f"labeling_{model_name}_id_dataset_key"),
        models.UniqueConstraint(
            fields=["dataset", "reference_id"],
            name=f"labeling_{model_name}_reference_id_unique_in_dataset",
            violation_error_message=f"This dataset already has {noun} with this reference_id.",
        ),
        models.CheckConstraint(
            condition=Q(reference_id__regex=r"\S"),
            name=f"labeling_{model_name}_reference_id_not_blank",
            violation_error_message="reference_id cannot be empty.",
        ),
    ]


class Dataset(models.Model):
    class Kind(models.TextChoices):
        IMAGES = "images", "Images"
        SCENES = "scenes", "Scenes"

    name = models.CharField(max_length=200, unique=True)
    kind = models.CharField(
        max_length=10,
        choices=Kind.choices,
        default=Kind.IMAGES,
        help_text="Images datasets hold items; scene datasets hold scenes (videos or frame "
        "sequences), as Nucleus's is_scene datasets do.",
    )
    nucleus_dataset_id = models.CharField(
        max_length=100,
        blank=True,
        help_text="The Nucleus dataset (ds_...) this dataset syncs to; empty until linked.",
    )
    nucleus_push_items = models.BooleanField(
        default=False,
        help_text="Each sync first appends the items or scenes Nucleus does not have yet (dataset.append); "
        "an annotation waits, pending, until its item or scene is there.",
    )
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="DatasetMember", related_name="labeling_datasets"
    )
    taxonomies_revision = models.PositiveIntegerField(
        default=0,
        editable=False,
        help_text="Bumped by every change to the dataset's taxonomies or labels (taxonomies.services), "
        "so a process that keeps them in memory knows when to read them again.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["nucleus_dataset_id"],
                condition=~Q(nucleus_dataset_id=""),
                name="labeling_dataset_nucleus_dataset_id_unique",
                violation_error_message="Another dataset is already linked to this Nucleus dataset.",
            ),
            models.CheckConstraint(
                condition=Q(kind__in=["images", "scenes"]), name="labeling_dataset_kind_valid"
            ),
            models.CheckConstraint(condition=Q(name__regex=r"\S"), name="labeling_dataset_name_not_blank"),
        ]

    def __str__(self) -> str:
        return self.name


class DatasetMember(models.Model):
    class Role(models.TextChoices):
        ADMIN = "admin", "Admin"
        LABELER = "labeler", "Labeler"

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="dataset_memberships"
    )
    role = models.CharField(
        max_length=10,
        choices=Role.choices,
        default=Role.LABELER,
        help_text="Admins manage taxonomies, members and imports; labelers label and read.",
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["dataset", "user"],
                name="labeling_datasetmember_one_role_per_user",
                violation_error_message="This user is already a member of this dataset.",
            ),
            models.CheckConstraint(
                condition=Q(role__in=["admin", "labeler"]), name="labeling_datasetmember_role_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} ({self.role}) in {self.dataset}"


def uploaded_image_path(instance: "Item", filename: str) -> str:
    """A name the server picks: the uploader's file name never reaches the disk.

    The extension comes from the format Pillow detected (set by the upload service), not from the
    name the client sent.
    """
    suffix = PurePosixPath(filename).suffix.lower()
    return f"items/{instance.dataset_id}/{uuid.uuid4().hex}{suffix}"


def nucleus_uploaded_at_field() -> models.DateTimeField:
    """Items and scenes record when Nucleus got them (`labeling.services.nucleus_items`)."""
    return models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        help_text="When it was appended to the linked Nucleus dataset (or pulled from it); empty until then.",
    )


class Scene(models.Model):
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="scenes")
    reference_id = models.CharField(max_length=255, help_text="Nucleus reference_id of the scene.")
    video_url = models.URLField(
        max_length=2000,
        blank=True,
        validators=[http_url_validator],
        help_text="A video for the scene; empty when it is a frame sequence.",
    )
    frame_rate = models.FloatField(
        default=1.0,
        validators=[MinValueValidator(0.001)],
        help_text="Frames per second, for playback and for Nucleus.",
    )
    metadata = models.JSONField(default=dict, blank=True, validators=[validate_metadata])
    created_at = models.DateTimeField(auto_now_add=True)
    nucleus_uploaded_at = nucleus_uploaded_at_field()

    objects = ReferenceIdQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        constraints = [
            *dataset_member_constraints(model_name="scene", noun="a scene"),
            models.CheckConstraint(
                condition=Q(frame_rate__gt=0),
                name="labeling_scene_frame_rate_positive",
                violation_error_message="frame_rate must be greater than 0.",
            ),
        ]
        indexes = [
            # push_nucleus_items: "this dataset's scenes not on Nucleus yet, in id order".
            models.Index(fields=["dataset", "id"], condition=Q(nucleus_uploaded_at__isnull=True), name="labeling_scene_not_on_nucleus"),
        ]

    def __str__(self) -> str:
        return self.reference_id

    def natural_key(self) -> tuple[int, str]:
        return (self.dataset_id, self.reference_id)


class Item(models.Model):
    """An image. In a scene dataset, the frames of a frame-sequence scene are items too (as in
    Nucleus, where each frame is a dataset item with its own reference_id)."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="items")
    reference_id = models.CharField(max_length=255, help_text="Nucleus reference_id of the item.")
    image = models.ImageField(
        upload_to=uploaded_image_path,
        max_length=255,
        blank=True,
        help_text="An uploaded image; stored under a name the server picks.",
    )
    image_url = models.URLField(
        max_length=2000,
        blank=True,
        validators=[http_url_validator],
        help_text="A remote image (http or https), instead of an upload.",
    )
    # Read with Pillow when the image is stored (not on every load, as ImageField's width_field would).
    width = models.PositiveIntegerField(null=True, blank=True, editable=False)
    height = models.PositiveIntegerField(null=True, blank=True, editable=False)
    metadata = models.JSONField(default=dict, blank=True, validators=[validate_metadata])
    scene = models.ForeignKey(
        Scene,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="frames",
        help_text="The scene this item is a frame of, if any.",
    )
    frame_index = models.PositiveIntegerField(
        null=True, blank=True, help_text="Position of the frame in its scene, from 0."
    )
    class ImageCheck(models.TextChoices):
        OK = "ok", "Verified"
        PENDING = "pending", "Waiting for verification"
        FAILED = "failed", "Failed verification"

    image_check = models.CharField(
        max_length=10,
        choices=ImageCheck.choices,
        default=ImageCheck.OK,
        editable=False,
        help_text="An uploaded image is decoded and verified outside the web worker; until it passes, "
        "its task waits and the item is not handed out.",
    )
    image_error = models.TextField(blank=True, editable=False, help_text="Why the image failed verification.")
    created_at = models.DateTimeField(auto_now_add=True)
    nucleus_uploaded_at = nucleus_uploaded_at_field()

    objects = ReferenceIdQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        constraints = [
            *dataset_member_constraints(model_name="item", noun="an item"),
            models.CheckConstraint(
                condition=Q(image_check__in=["ok", "pending", "failed"]), name="labeling_item_image_check_valid"
            ),
            # Only an upload is verified: an image known by URL is never pending (nor failed).
            models.CheckConstraint(
                condition=Q(image_check="ok") | ~Q(image=""), name="labeling_item_only_uploads_verified"
            ),
            models.CheckConstraint(
                condition=(Q(image="") & ~Q(image_url="")) | (~Q(image="") & Q(image_url="")),
                name="labeling_item_one_image_source",
                violation_error_message="An item needs exactly one of an uploaded image or an image_url.",
            ),
            models.CheckConstraint(
                condition=Q(scene__isnull=True, frame_index__isnull=True)
                | Q(scene__isnull=False, frame_index__isnull=False),
                name="labeling_item_frame_has_scene_and_index",
                violation_error_message="A frame needs both its scene and its frame_index.",
            ),
            models.CheckConstraint(
                condition=Q(frame_index__lt=MAX_FRAMES_PER_SCENE) | Q(frame_index__isnull=True),
                name="labeling_item_frame_index_within_limit",
                violation_error_message=f"A scene holds at most {MAX_FRAMES_PER_SCENE} frames.",
            ),
            models.UniqueConstraint(
                fields=["scene", "frame_index"],
                name="labeling_item_one_frame_per_index",
                violation_error_message="This scene already has a frame at this index.",
            ),
            CompositeForeignKey(
                fields=["scene", "dataset"],
                to_fields=["id", "dataset"],
                name="labeling_item_scene_in_dataset",
                violation_error_message="A frame must be in the same dataset as its scene.",
            ),
        ]
        indexes = [
            # item_images_verify_sweep: "uploads still pending verification" (few, next to the items).
            models.Index(fields=["created_at"], condition=Q(image_check="pending"), name="labeling_item_image_pending"),
            # push_nucleus_items: "this dataset's items (not frames) not on Nucleus yet, in id order".
            models.Index(
                fields=["dataset", "id"],
                condition=Q(nucleus_uploaded_at__isnull=True, scene__isnull=True),
                name="labeling_item_not_on_nucleus",
            ),
        ]

    def __str__(self) -> str:
        return self.reference_id

    def natural_key(self) -> tuple[int, str]:
        return (self.dataset_id, self.reference_id)

    @property
    def image_src(self) -> str:
        """Where a browser loads the image from."""
        return self.image.url if self.image else self.image_url


class CategoryAnnotation(models.Model):
    """The label(s) chosen for one item or scene in one taxonomy.

    Single-label taxonomies store the choice in `label`; multi-label taxonomies store the set of
    chosen labels as `AnnotationLabel` rows (possibly empty: "none of these apply").

    Sync bookkeeping (the outbox): every change to a finished annotation bumps `version` and sets
    `sync_state` to pending in the same transaction; the sync records `synced_version` when Nucleus
    has accepted a version, so "what changed since the last sync" is `synced_version < version`.
    """

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        FINISHED = "finished", "Finished"

    class SyncState(models.TextChoices):
        NOT_READY = "not_ready", "Not ready (draft)"
        PENDING = "pending", "Pending"
        SYNCED = "synced", "Synced"
        FAILED = "failed", "Failed"

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="annotations")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, null=True, blank=True, related_name="annotations")
    scene = models.ForeignKey(
        Scene, on_delete=models.CASCADE, null=True, blank=True, related_name="annotations"
    )
    taxonomy = models.ForeignKey(Taxonomy, on_delete=models.CASCADE, related_name="annotations")
    # RESTRICT rather than PROTECT: deleting a whole taxonomy deletes its annotations and labels
    # together, while deleting one label that annotations still use is refused.
    label = models.ForeignKey(
        Label,
        on_delete=models.RESTRICT,
        null=True,
        blank=True,
        related_name="annotations",
        help_text="The chosen label (single-label taxonomies).",
    )
    labels = models.ManyToManyField(
        Label,
        through="AnnotationLabel",
        related_name="multi_label_annotations",
        blank=True,
        help_text="The chosen labels (multi-label taxonomies).",
    )
    metadata = models.JSONField(default=dict, blank=True, validators=[validate_metadata])
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="category_annotations",
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    version = models.PositiveIntegerField(
        default=1, help_text="Bumped on every change to the finished annotation."
    )
    synced_version = models.PositiveIntegerField(
        default=0, help_text="The version Nucleus last accepted; 0 if never synced."
    )
    sync_state = models.CharField(max_length=10, choices=SyncState.choices, default=SyncState.NOT_READY)
    sync_attempts = models.PositiveIntegerField(default=0)
    sync_next_attempt_at = models.DateTimeField(null=True, blank=True)
    sync_error = models.TextField(blank=True, help_text="Nucleus's last error for this annotation.")
    # The sync's claim: the worker whose token is here is sending this annotation until
    # sync_claimed_until; after that (the worker died) another worker may send it again.
    sync_claim = models.CharField(
        max_length=32, null=True, blank=True, editable=False, help_text="Token of the sync sending it now."
    )
    sync_claimed_until = models.DateTimeField(null=True, blank=True, editable=False)
    # Multi-label only: the ids of the classes its labeler was shown. Its True/False payloads are
    # for these classes alone, so a class added later is not reported as "False" by an answer
    # whose labeler never saw it. Null for single-label taxonomies.
    shown_label_ids = models.JSONField(
        null=True, blank=True, editable=False, help_text="Multi-label: the ids of the classes the labeler was shown."
    )
    # Multi-label only: sent back to the queue for the classes added since (`labeling.services.new_classes`):
    # the ids of the classes the labeling page asks for now. Cleared by the next finished answer.
    asked_label_ids = models.JSONField(
        null=True, blank=True, editable=False,
        help_text="Multi-label, sent back for new classes: the ids of the classes asked now.",
    )

    class Meta:
        ordering = ["id"]
        constraints = [
            # Target of AnnotationLabel's composite key (its labels belong to this taxonomy).
            models.UniqueConstraint(fields=["id", "taxonomy"], name="labeling_categoryannotation_id_taxonomy_key"),
            models.CheckConstraint(
                condition=Q(item__isnull=False, scene__isnull=True) | Q(item__isnull=True, scene__isnull=False),
                name="labeling_categoryannotation_item_xor_scene",
                violation_error_message="An annotation is on exactly one item or one scene, not both.",
            ),
            models.UniqueConstraint(
                fields=["item", "taxonomy"],
                name="labeling_categoryannotation_one_per_item_and_taxonomy",
                violation_error_message="This item already has an annotation in this taxonomy.",
            ),
            models.UniqueConstraint(
                fields=["scene", "taxonomy"],
                name="labeling_categoryannotation_one_per_scene_and_taxonomy",
                violation_error_message="This scene already has an annotation in this taxonomy.",
            ),
            models.CheckConstraint(
                condition=Q(status__in=["draft", "finished"]),
                name="labeling_categoryannotation_status_valid",
            ),
            models.CheckConstraint(
                condition=Q(status="finished", finished_at__isnull=False)
                | Q(status="draft", finished_at__isnull=True),
                name="labeling_categoryannotation_finished_at_iff_finished",
            ),
            models.CheckConstraint(
                condition=Q(synced_version__lte=F("version")),
                name="labeling_categoryannotation_synced_version_not_ahead",
            ),
            models.CheckConstraint(
                condition=Q(status="draft", sync_state="not_ready")
                | Q(status="finished", sync_state__in=["pending", "synced", "failed"]),
                name="labeling_categoryannotation_sync_state_matches_status",
            ),
            models.CheckConstraint(
                condition=Q(asked_label_ids__isnull=True) | Q(shown_label_ids__isnull=False, status="finished"),
                name="labeling_categoryannotation_asked_only_of_finished_multi_label",
                violation_error_message="Only a finished multi-label answer can be sent back for new classes.",
            ),
            models.CheckConstraint(
                condition=Q(sync_claim__isnull=True, sync_claimed_until__isnull=True)
                | Q(sync_claim__isnull=False, sync_claimed_until__isnull=False, sync_state="pending"),
                name="labeling_categoryannotation_sync_claim_is_pending_with_expiry",
            ),
            CompositeForeignKey(
                fields=["label", "taxonomy"],
                to_fields=["id", "taxonomy"],
                name="labeling_categoryannotation_label_in_taxonomy",
                violation_error_message="The label is not a label of this taxonomy.",
            ),
            CompositeForeignKey(
                fields=["taxonomy", "dataset"],
                to_fields=["id", "dataset"],
                name="labeling_categoryannotation_taxonomy_in_dataset",
                violation_error_message="The taxonomy is not a taxonomy of this dataset.",
            ),
            CompositeForeignKey(
                fields=["item", "dataset"],
                to_fields=["id", "dataset"],
                name="labeling_categoryannotation_item_in_dataset",
                violation_error_message="The item is not in this dataset.",
            ),
            CompositeForeignKey(
                fields=["scene", "dataset"],
                to_fields=["id", "dataset"],
                name="labeling_categoryannotation_scene_in_dataset",
                violation_error_message="The scene is not in this dataset.",
            ),
        ]
        indexes = [
            # The sync's sweep: "finished annotations waiting to be sent, oldest due first".
            models.Index(
                fields=["sync_next_attempt_at"],
                condition=Q(sync_state="pending"),
                name="labeling_annotation_sync_due",
            ),
            # The sync's claim: "the first pending annotations of this dataset in id order", and
            # the sweep's "datasets with pending annotations".
            models.Index(
                fields=["dataset", "id"],
                condition=Q(sync_state="pending"),
                name="labeling_annotation_sync_queue",
            ),
        ]

    def __str__(self) -> str:
        target = self.item or self.scene
        return f"{self.taxonomy} of {target}"

    @property
    def reference_id(self) -> str:
        return (self.item or self.scene).reference_id

    @property
    def is_finished(self) -> bool:
        return self.status == self.Status.FINISHED

    def chosen_label_names(self) -> list[str]:
        """The chosen label(s) as names, in the taxonomy's label order."""
        if self.label_id is not None:
            return [self.label.name]
        return [label.name for label in self.labels.all()]


class AnnotationLabel(models.Model):
    """One chosen label of a multi-label annotation."""

    annotation = models.ForeignKey(CategoryAnnotation, on_delete=models.CASCADE, related_name="chosen")
    label = models.ForeignKey(Label, on_delete=models.RESTRICT, related_name="choices")
    taxonomy = models.ForeignKey(Taxonomy, on_delete=models.CASCADE, related_name="+")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["annotation", "label"],
                name="labeling_annotationlabel_once_per_annotation",
                violation_error_message="This label is already chosen in this annotation.",
            ),
            CompositeForeignKey(
                fields=["annotation", "taxonomy"],
                to_fields=["id", "taxonomy"],
                name="labeling_annotationlabel_annotation_in_taxonomy",
                violation_error_message="The annotation is not in this taxonomy.",
            ),
            CompositeForeignKey(
                fields=["label", "taxonomy"],
                to_fields=["id", "taxonomy"],
                name="labeling_annotationlabel_label_in_taxonomy",
                violation_error_message="The label is not a label of this taxonomy.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.label} in {self.annotation_id}"


class Task(models.Model):
    """One unit of work in a dataset's labeling queue: an item (images datasets) or a scene (scene
    datasets). A labeler holds a task under a lease; an expired lease puts it back in the queue.

    Claims are compare-and-set statements in `labeling.services.queue`; the indexes below are
    shaped for exactly those statements.
    """

    class State(models.TextChoices):
        OPEN = "open", "Open"
        DONE = "done", "Done"
        # Not handed out yet: its item's uploaded image is still being verified (or failed).
        WAITING = "waiting", "Waiting for its image"

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="tasks")
    item = models.OneToOneField(Item, on_delete=models.CASCADE, null=True, blank=True, related_name="task")
    scene = models.OneToOneField(Scene, on_delete=models.CASCADE, null=True, blank=True, related_name="task")
    state = models.CharField(max_length=10, choices=State.choices, default=State.OPEN)
    holder = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="held_tasks"
    )
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    # Set by the claim that takes a task over from a holder whose lease ran out, so that holder's late
    # write is told "someone took it" (409) rather than "someone else's finished work" (403).
    previous_holder = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="the labeler whose expired lease the current holder took over",
    )
    done_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="done_tasks"
    )
    done_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(item__isnull=False, scene__isnull=True) | Q(item__isnull=True, scene__isnull=False),
                name="labeling_task_item_xor_scene",
            ),
            models.CheckConstraint(condition=Q(state__in=["open", "done", "waiting"]), name="labeling_task_state_valid"),
            models.CheckConstraint(
                condition=Q(holder__isnull=True, lease_expires_at__isnull=True)
                | Q(holder__isnull=False, lease_expires_at__isnull=False),
                name="labeling_task_lease_has_holder_and_expiry",
            ),
            models.CheckConstraint(
                condition=Q(state="open") | Q(holder__isnull=True),
                name="labeling_task_done_is_not_held",
            ),
            CompositeForeignKey(
                fields=["item", "dataset"], to_fields=["id", "dataset"], name="labeling_task_item_in_dataset"
            ),
            CompositeForeignKey(
                fields=["scene", "dataset"], to_fields=["id", "dataset"], name="labeling_task_scene_in_dataset"
            ),
        ]
        indexes = [
            # next: "the first open task of this dataset in queue order" (a scan that stops at the
            # first claimable row, so it costs the same at 1M tasks as at 10k).
            models.Index(fields=["dataset", "id"], condition=Q(state="open"), name="labeling_task_open_queue"),
            # next: "the task this labeler already holds in this dataset" (refresh, second tab).
            models.Index(fields=["holder", "dataset"], condition=Q(holder__isnull=False), name="labeling_task_held"),
        ]

    def __str__(self) -> str:
        return f"task {self.item or self.scene}"

    @property
    def target(self) -> "Item | Scene":
        return self.item or self.scene


class TaskSkip(models.Model):
    """A labeler skipped a task: it goes to the end of that labeler's queue (others still get it)."""

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="skips")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="task_skips")
    skipped_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["task", "user"], name="labeling_taskskip_once_per_user"),
        ]
        indexes = [
            # next, when nothing unskipped is left: "this labeler's skipped tasks, oldest skip first".
            models.Index(fields=["user", "skipped_at"], name="labeling_taskskip_by_user"),
        ]

    def __str__(self) -> str:
        return f"{self.user} skipped {self.task_id}"


class IdempotentRequest(models.Model):
    """A POST sent with an `Idempotency-Key` header, and the answer it got.

    A client that retries after a lost response sends the same key and gets the stored answer
    instead of creating the rows twice. The unique constraint decides which of two concurrent
    requests with one key runs; the other is told it is in progress."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=200)
    path = models.CharField(max_length=500, help_text="The request it answered; a key is not reused for another.")
    status_code = models.PositiveIntegerField(null=True, help_text="Empty while the request runs.")
    body = models.JSONField(null=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "key"], name="labeling_idempotentrequest_key_once_per_user"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id}:{self.key}"


class NucleusTaxonomyDeletion(models.Model):
    """A taxonomy that must be deleted on the linked Nucleus dataset: its taxonomy was deleted here,
    and once the row is gone the sync could not know. Written in the transaction that deletes the
    taxonomy (`taxonomy_remove`); the sync deletes it on Nucleus, then this row."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="nucleus_taxonomy_deletions")
    taxonomy_name = models.CharField(
        max_length=500,
        help_text="The name on Nucleus: a taxonomy_name, or '<taxonomy_name>:<label>' for a class of a multi-label taxonomy.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["dataset", "taxonomy_name"], name="labeling_nucleustaxonomydeletion_once_per_name"),
        ]

    def __str__(self) -> str:
        return f"delete {self.taxonomy_name} on Nucleus ({self.dataset_id})"
