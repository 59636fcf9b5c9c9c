"""Reads used by more than one caller."""

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.db.models import Count, Exists, F, OuterRef, Prefetch, Q, QuerySet, Value
from django.http import Http404
from django.utils import timezone

from labeling.models import AnnotationLabel, CategoryAnnotation, Dataset, DatasetMember, Item, Task
from taxonomies.models import Label, Taxonomy


def label_usage_counts(*, taxonomy: Taxonomy) -> dict[int, dict[str, int]]:
    """How many annotations use each label of a taxonomy, by status: {label_id: {"finished": n, "draft": m}}.

    One grouped query, whichever kind the taxonomy is.
    """
    if taxonomy.multi_label:
        rows = (
            AnnotationLabel.objects.filter(taxonomy=taxonomy)
            .values("label_id", "annotation__status")
            .annotate(count=Count("id"))
            .values_list("label_id", "annotation__status", "count")
        )
    else:
        rows = (
            CategoryAnnotation.objects.filter(taxonomy=taxonomy, label__isnull=False)
            .values("label_id", "status")
            .annotate(count=Count("id"))
            .values_list("label_id", "status", "count")
        )
    usage: dict[int, dict[str, int]] = {}
    for label_id, status, count in rows:
        usage.setdefault(label_id, {"finished": 0, "draft": 0})[status] = count
    return usage


def dataset_list_for_user(*, user) -> QuerySet[Dataset]:
    """The datasets a user may see, each with `role`: their role in it (superusers are admins of all)."""
    if user.is_superuser:
        return Dataset.objects.annotate(role=Value(DatasetMember.Role.ADMIN))
    return Dataset.objects.filter(memberships__user=user).annotate(role=F("memberships__role"))


def dataset_create_allowed(*, user) -> bool:
    """Who may create a dataset (and so become its admin): superusers, and users given the
    `labeling.add_dataset` permission. The API and the Django admin both ask this."""
    return user.is_active and user.has_perm("labeling.add_dataset")


def dataset_list_administered_by(*, user) -> QuerySet[Dataset]:
    """The datasets a user manages: all for a superuser, else those where they are an admin. The
    Django admin scopes every page to these (settings.ADMIN_DATASET_SCOPE points here)."""
    if user.is_superuser:
        return Dataset.objects.all()
    return Dataset.objects.filter(memberships__user=user, memberships__role=DatasetMember.Role.ADMIN)


def dataset_id_storable(dataset_id: int) -> bool:
    """Whether an id from a URL fits the databases' 64-bit integers: a raw query given a bigger
    one fails (SQLite: OverflowError) where the ORM's lookup would just find nothing."""
    return 0 < dataset_id < 2**63


def user_by_username(username: str):
    """The user with this exact username, for making them a member (the API's members/ and the
    admin's members inline); a ValidationError if there is none."""
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise ValidationError("No user has this username.")
    return user


def dataset_membership_sql(*, user_alias: str) -> tuple[str, str]:
    """The rule of `dataset_list_for_user` in SQL, for the raw queries of the lookup every dataset
    request makes (`dataset_get_for_user`, and the API's token authentication, which reads it with
    the user): a select expression for `role` (parameter: the admin role) and the joins that bring
    the dataset as `d` only when the user row `user_alias` may see it (parameters: the dataset id,
    twice). Superusers see every dataset, as admins; others see their datasets with their role."""
    quote = connection.ops.quote_name
    role = f"CASE WHEN {user_alias}.is_superuser THEN %s ELSE m.role END"
    joins = (
        f"LEFT JOIN {quote(DatasetMember._meta.db_table)} m "
        f"ON m.user_id = {user_alias}.{quote(get_user_model()._meta.pk.column)} AND m.dataset_id = %s "
        f"LEFT JOIN {quote(Dataset._meta.db_table)} d ON d.id = %s AND ({user_alias}.is_superuser OR m.id IS NOT NULL)"
    )
    return role, joins


def dataset_get_for_user(*, user, dataset_id) -> Dataset:
    """The dataset with `role` set (as `dataset_list_for_user`), or 404 for anyone who is not a
    member: a stranger cannot even learn that it exists.

    One raw query: every dataset page and API request runs this, and the ORM compiling the
    membership join cost about 0.5 ms of CPU each time, a tenth of a labeling request."""
    if user.pk is None or not dataset_id_storable(dataset_id):
        raise Http404("No such dataset.")
    role, joins = dataset_membership_sql(user_alias="u")
    quote = connection.ops.quote_name
    found = list(
        Dataset.objects.raw(
            f"SELECT d.*, {role} AS role FROM {quote(user._meta.db_table)} u {joins} WHERE u.{quote(user._meta.pk.column)} = %s",
            [DatasetMember.Role.ADMIN, dataset_id, dataset_id, user.pk],
        )
    )
    if not found or found[0].pk is None:
        raise Http404("No such dataset.")
    return found[0]


def item_list(*, dataset: Dataset, filters: dict) -> QuerySet[Item]:
    """Items of a dataset (scene frames excluded), filtered by `status` (open or done in the queue),
    `taxonomy`, `label` (a label name, in `taxonomy` when given), `annotator` (username) and
    `reference_id`."""
    items = Item.objects.filter(dataset=dataset, scene__isnull=True).select_related("task")
    if filters.get("status"):
        items = items.filter(task__state=filters["status"])
    if filters.get("reference_id"):
        items = items.filter(reference_id=filters["reference_id"])
    annotations = _annotation_filter(dataset=dataset, filters=filters)
    if annotations is not None:
        items = items.filter(id__in=annotations.values("item_id"))
    return items.order_by("id")


def annotation_list(*, dataset: Dataset, filters: dict) -> QuerySet[CategoryAnnotation]:
    """Annotations of a dataset filtered by `status` (draft or finished), `taxonomy`, `label`,
    `annotator` and `reference_id`, with what their serialization reads."""
    annotations = _annotation_filter(dataset=dataset, filters=filters)
    if annotations is None:
        annotations = CategoryAnnotation.objects.filter(dataset=dataset)
    if filters.get("status"):
        annotations = annotations.filter(status=filters["status"])
    if filters.get("reference_id"):
        ref = filters["reference_id"]
        annotations = annotations.filter(Q(item__reference_id=ref) | Q(scene__reference_id=ref))
    return (
        annotations.select_related("item", "scene", "taxonomy", "label", "annotator")
        .prefetch_related("labels")
        .order_by("id")
    )


def _annotation_filter(*, dataset: Dataset, filters: dict) -> QuerySet[CategoryAnnotation] | None:
    """Annotations matching the taxonomy / label / annotator filters, or None when none is given."""
    if not any(filters.get(key) for key in ("taxonomy", "label", "annotator")):
        return None
    annotations = CategoryAnnotation.objects.filter(dataset=dataset)
    if filters.get("taxonomy"):
        annotations = annotations.filter(taxonomy__taxonomy_name=filters["taxonomy"])
    if filters.get("label"):
        annotations = annotations.filter(Q(label__name=filters["label"]) | Q(labels__name=filters["label"]))
    if filters.get("annotator"):
        annotations = annotations.filter(annotator__username=filters["annotator"])
    return annotations


def finished_annotations_for_export(*, dataset: Dataset) -> QuerySet[CategoryAnnotation]:
    """Every finished annotation of the dataset with what a Nucleus payload needs, in id order."""
    return (
        CategoryAnnotation.objects.filter(dataset=dataset, status=CategoryAnnotation.Status.FINISHED)
        .select_related("item", "scene", "taxonomy", "label")
        .prefetch_related("labels", "taxonomy__labels")
        .order_by("id")
    )


def task_answers(*, task) -> list[dict]:
    """The current answers of a task's item or scene, in the shape the queue takes them back:
    `{"taxonomy_name", "label" | "labels", "metadata", "status"}`; a multi-label answer sent back
    for the classes added since has `new_classes` too: the only classes to ask (names, in the
    taxonomy's order), read in one more query only then."""
    annotations = list(
        task.target.annotations.select_related("taxonomy", "label").prefetch_related("labels").order_by("taxonomy__position", "taxonomy_id")
    )
    asked = [label_id for annotation in annotations for label_id in annotation.asked_label_ids or ()]
    asked_labels = list(Label.objects.filter(id__in=asked).order_by("position", "id").values_list("id", "name")) if asked else []
    answers = []
    for annotation in annotations:
        answer = {"taxonomy_name": annotation.taxonomy.taxonomy_name, "metadata": annotation.metadata, "status": annotation.status}
        if annotation.taxonomy.multi_label:
            answer["labels"] = [label.name for label in annotation.labels.all()]
        else:
            answer["label"] = annotation.label.name if annotation.label else None
        if annotation.asked_label_ids is not None:
            answer["new_classes"] = [name for label_id, name in asked_labels if label_id in annotation.asked_label_ids]
        answers.append(answer)
    return answers


# Frames preloaded per scene ahead: enough to show the first frames at once; the strip loads the rest.
AHEAD_FRAMES = 12


def task_list_ahead_for_user(*, dataset: Dataset, user, limit: int) -> list[Task]:
    """The first `limit` tasks a claim by `user` would consider, in the claim's order (open, lease
    free; the ones this user skipped last, oldest skip first), read without claiming or locking.

    One query whatever the dataset's size (two when fewer than `limit` tasks that
    the user did not skip are left; one more each for a scene dataset's first frames): each walks the
    open-queue index from the front and stops after `limit` free rows, stepping over at most one held
    row per labeler."""
    now = timezone.now()
    # Only each scene's first frames (through the unique (scene, frame_index) index), not all 3000.
    frames = Prefetch("scene__frames", queryset=Item.objects.filter(frame_index__lt=AHEAD_FRAMES).order_by("frame_index"))
    free = (
        Task.objects.filter(dataset=dataset, state=Task.State.OPEN)
        .filter(Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now))
        .select_related("item", "scene")
    )
    tasks = list(free.exclude(skips__user=user).order_by("id").prefetch_related(frames)[:limit])
    if len(tasks) < limit:
        skipped = free.filter(skips__user=user).order_by("skips__skipped_at", "id").prefetch_related(frames)
        tasks += list(skipped[: limit - len(tasks)])
    return tasks


def _image_check_failed(*, prefix: str) -> Q:
    """A waiting `<prefix>` task whose image failed its check: an item's own, or any frame of a
    scene's (looked up through the (scene, frame_index) index, only for waiting scene tasks)."""
    failed_frame = Exists(Item.objects.filter(scene_id=OuterRef(f"{prefix}scene_id"), image_check=Item.ImageCheck.FAILED))
    return Q(**{f"{prefix}state": Task.State.WAITING}) & (
        Q(**{f"{prefix}item__image_check": Item.ImageCheck.FAILED}) | Q(failed_frame)
    )


def _image_check_counts(*, prefix: str) -> dict:
    """`checking`: the `<prefix>` tasks waiting for their images' check; `failed_images`: those whose
    image (or a frame) failed it, which are no work left: never queued, and not in a total."""
    waiting = Q(**{f"{prefix}state": Task.State.WAITING})
    failed = _image_check_failed(prefix=prefix)
    return {
        "checking": Count(f"{prefix}id", filter=waiting & ~failed),
        "failed_images": Count(f"{prefix}id", filter=failed),
    }


def _progress_counts(*, user, prefix: str) -> dict:
    """Tasks in total, done, and done by `user` since midnight (in TIME_ZONE), as Count expressions
    over `<prefix>` tasks, so the list page counts every dataset in one grouped query. An item or
    scene whose image failed its check is counted apart (`failed_images`), not in the total
    (`_image_check_counts`)."""
    midnight = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    return {
        "total": Count(f"{prefix}id", filter=~_image_check_failed(prefix=prefix)),
        "done": Count(f"{prefix}id", filter=Q(**{f"{prefix}state": Task.State.DONE})),
        "mine_today": Count(f"{prefix}id", filter=Q(**{f"{prefix}done_by": user, f"{prefix}done_at__gte": midnight})),
        **_image_check_counts(prefix=prefix),
    }


def dataset_list_with_progress_for_user(*, user) -> QuerySet[Dataset]:
    """The user's datasets (as `dataset_list_for_user`) with `total`, `done` and `mine_today` task
    counts, in one grouped query."""
    return dataset_list_for_user(user=user).annotate(**_progress_counts(user=user, prefix="tasks__")).order_by("name")


def dataset_progress(*, dataset: Dataset, user) -> dict:
    return Task.objects.filter(dataset=dataset).aggregate(**_progress_counts(user=user, prefix=""))


def dataset_image_check_counts(*, dataset: Dataset) -> dict:
    """`checking` and `failed_images` of `dataset_progress` alone, in one query over the waiting
    tasks only: what the queue says when it has nothing left to hand out."""
    return Task.objects.filter(dataset=dataset, state=Task.State.WAITING).aggregate(**_image_check_counts(prefix=""))


def taxonomy_list_for_labeling(*, dataset: Dataset) -> list[dict]:
    """The taxonomies the page shows for the dataset's kind, in order, with their labels (two queries)."""
    applies = Taxonomy.applies_to_scenes if dataset.kind == Dataset.Kind.SCENES else Taxonomy.applies_to_items
    taxonomies = Taxonomy.objects.filter(dataset=dataset).prefetch_related("labels").order_by("position", "id")
    return [
        {
            "taxonomy_name": taxonomy.taxonomy_name,
            "multi_label": taxonomy.multi_label,
            "required": taxonomy.required,
            "applies_to": taxonomy.applies_to,
            "labels": [{"name": label.name, "hotkey": label.hotkey} for label in taxonomy.labels.all()],
        }
        for taxonomy in taxonomies
        if applies(taxonomy)
    ]


def dataset_list_by_id_or_name(*, name_or_id: str) -> list[Dataset]:
    """The datasets (at most two) whose name is this, or whose id it is: commands take either."""
    lookup = Q(name=name_or_id)
    if name_or_id.isdigit():
        lookup |= Q(pk=int(name_or_id))
    return list(Dataset.objects.filter(lookup).order_by("pk")[:2])


def dataset_get_for_admin(*, user, dataset_id) -> Dataset:
    """The dataset, for one of its admins (or a superuser): 404 for anyone who is not a member,
    403 for a labeler (who knows it exists)."""
    dataset = dataset_get_for_user(user=user, dataset_id=dataset_id)
    if dataset.role != DatasetMember.Role.ADMIN:
        raise PermissionDenied("Only the dataset's admins may open this page.")
    return dataset


def sync_failure_page(*, dataset: Dataset, after: int, limit: int) -> list[CategoryAnnotation]:
    """Up to `limit` failed annotations of the dataset after id `after`, in id order, with what
    their row shows (reference_id, taxonomy_name, label(s)): two queries whatever their number, one
    when none failed. Served by the primary key; failures are few next to the dataset."""
    return list(
        CategoryAnnotation.objects.filter(dataset=dataset, sync_state=CategoryAnnotation.SyncState.FAILED, id__gt=after)
        .select_related("item", "scene", "taxonomy", "label")
        .prefetch_related("labels")
        .order_by("id")[:limit]
    )


def taxonomy_rebuild_list(*, dataset: Dataset) -> list[dict]:
    """The taxonomies the next sync deletes and re-creates on Nucleus (labels renamed or removed
    since Nucleus was given them), each with `removed` (those labels) and `resent` (its finished
    annotations, which go again): three queries at most."""
    taxonomies = Taxonomy.objects.filter(dataset=dataset, nucleus_labels__isnull=False).prefetch_related("labels")
    rebuilt = [taxonomy for taxonomy in taxonomies.order_by("position", "id") if taxonomy.needs_nucleus_rebuild()]
    if not rebuilt:
        return []
    resent = dict(
        CategoryAnnotation.objects.filter(taxonomy__in=rebuilt, status=CategoryAnnotation.Status.FINISHED)
        .values("taxonomy")
        .annotate(n=Count("id"))
        .order_by()
        .values_list("taxonomy", "n")
    )
    return [
        {"taxonomy_name": taxonomy.taxonomy_name, "removed": taxonomy.nucleus_labels_removed(), "resent": resent.get(taxonomy.id, 0)}
        for taxonomy in rebuilt
    ]


def taxonomies_by_name(*, dataset: Dataset) -> dict[str, Taxonomy]:
    return {taxonomy.taxonomy_name: taxonomy for taxonomy in dataset.taxonomies.prefetch_related("labels")}


# Per process: dataset id -> ((created_at, taxonomies_revision), its taxonomies by name).
_taxonomies_in_memory: dict[int, tuple[tuple, dict[str, Taxonomy]]] = {}


def taxonomies_by_name_cached(*, dataset: Dataset) -> dict[str, Taxonomy]:
    """`taxonomies_by_name`, kept in memory per process and read again when the dataset's
    `taxonomies_revision` has moved (every taxonomy or label change bumps it), so the labeling
    queue's submits do not read the same taxonomies thousands of times an hour.

    The dataset must have been read in this request (as the API's dataset lookup does), so its
    revision is current. The taxonomies returned are shared between requests: read them only."""
    # created_at tells apart a dataset that reuses a deleted one's id (SQLite reuses ids).
    version = (dataset.created_at, dataset.taxonomies_revision)
    cached = _taxonomies_in_memory.get(dataset.id)
    if cached is not None and cached[0] == version:
        return cached[1]
    taxonomies = taxonomies_by_name(dataset=dataset)
    _taxonomies_in_memory[dataset.id] = (version, taxonomies)
    return taxonomies
