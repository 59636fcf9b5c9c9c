"""Storing the demo: two datasets, their taxonomies, images and scenes, two demo users, and a few
finished annotations, all through the services.

Each demo dataset is loaded once. It is built under a working name ("Demo images (loading)") and
takes its demo name as the last step, so a dataset with the demo name is complete and later runs leave
it exactly as they find it: whatever an admin renamed, re-keyed, removed or relabelled since stays
that way, and nothing of the demo's is added back (later runs only reset the demo users' passwords).
There is no transaction around a whole dataset: uploads write files, which we keep out of long
transactions, and every service call is atomic on its own. A run that stops half-way leaves the
dataset under its working name, and the next run adds what is missing (rows found by their natural
keys: taxonomy_name, reference_id) and then names it.
"""

import secrets
from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser

from labeling.demo.drawing import draw_garment, draw_scene_frame, jpeg_upload
from labeling.demo.specs import (
    FINISHED_IMAGE_COUNT,
    FINISHED_SCENE_COUNT,
    FRAMES_PER_SCENE,
    IMAGE_TAXONOMIES,
    IMAGES_DATASET_NAME,
    SCENE_FRAME_RATE,
    SCENE_SPECS,
    SCENE_TAXONOMIES,
    SCENES_DATASET_NAME,
    TaxonomySpec,
    image_specs,
)
from labeling.models import Dataset, DatasetMember, Item, Scene
from labeling.services.annotations import annotation_save
from labeling.services.annotations_import import tasks_mark_done_if_answered
from labeling.services.datasets import dataset_create, dataset_member_set, dataset_update
from labeling.services.items import item_create, scene_create
from taxonomies.models import Taxonomy
from taxonomies.services import taxonomy_add_labels, taxonomy_create

ADMIN_USERNAME = "admin"
LABELER_USERNAME = "labeler"
LOADING_SUFFIX = " (loading)"
TALLIED = ("datasets", "taxonomies", "labels", "items", "scenes", "annotations")


@dataclass
class Tally:
    created: int = 0
    present: int = 0


@dataclass
class DatasetLoaded:
    """What one run created in a dataset, and what it found already there."""

    name: str
    tallies: dict[str, Tally] = field(default_factory=lambda: {noun: Tally() for noun in TALLIED})
    already_loaded: bool = False  # a complete demo dataset was there: this run left it alone


@dataclass(frozen=True)
class DemoLogin:
    username: str
    password: str | None  # None when an existing account kept its password (--keep-passwords)


@dataclass(frozen=True)
class DemoLoaded:
    datasets: list[DatasetLoaded]
    logins: list[DemoLogin]


def demo_load(*, keep_passwords: bool) -> DemoLoaded:
    """Load the demo datasets that are not loaded yet. The demo users get fresh passwords, returned
    in the clear to be shown once; with `keep_passwords`, only accounts created now get one."""
    admin, admin_login = _demo_user_ensure(username=ADMIN_USERNAME, superuser=True, keep_password=keep_passwords)
    labeler, labeler_login = _demo_user_ensure(
        username=LABELER_USERNAME, superuser=False, keep_password=keep_passwords
    )
    return DemoLoaded(
        datasets=[
            _dataset_load(IMAGES_DATASET_NAME, kind=Dataset.Kind.IMAGES, fill=_images_fill, admin=admin, labeler=labeler),
            _dataset_load(SCENES_DATASET_NAME, kind=Dataset.Kind.SCENES, fill=_scenes_fill, admin=admin, labeler=labeler),
        ],
        logins=[admin_login, labeler_login],
    )


def _demo_user_ensure(*, username: str, superuser: bool, keep_password: bool) -> tuple[AbstractUser, DemoLogin]:
    """The demo account, made active and given its demo rights whatever they were before, so the
    printed login works."""
    User = get_user_model()
    user = User.objects.filter(username=username).first() or User(username=username)
    password = None
    if user.pk is None or not keep_password:
        password = secrets.token_urlsafe(12)
        user.set_password(password)
    user.is_active = True
    user.is_staff = user.is_superuser = superuser
    user.save()
    return user, DemoLogin(username=username, password=password)


def _dataset_load(name: str, *, kind: str, fill, admin, labeler) -> DatasetLoaded:
    """Leave a dataset with the demo name alone; else create (or finish) it under its working name,
    fill it and give it the demo name."""
    loaded = DatasetLoaded(name=name)
    if Dataset.objects.filter(name=name).exists():
        loaded.already_loaded = True
        return loaded
    dataset = Dataset.objects.filter(name=name + LOADING_SUFFIX).first()
    if dataset is None:
        dataset = dataset_create(name=name + LOADING_SUFFIX, kind=kind)
        loaded.tallies["datasets"].created += 1
    else:
        loaded.tallies["datasets"].present += 1
    dataset_member_set(dataset=dataset, user=admin, role=DatasetMember.Role.ADMIN)
    dataset_member_set(dataset=dataset, user=labeler, role=DatasetMember.Role.LABELER)
    fill(loaded, dataset=dataset, labeler=labeler)
    dataset_update(
        dataset=dataset, name=name, nucleus_dataset_id=dataset.nucleus_dataset_id, nucleus_push_items=dataset.nucleus_push_items
    )
    return loaded


def _images_fill(loaded: DatasetLoaded, *, dataset: Dataset, labeler) -> None:
    taxonomies = _taxonomies_ensure(loaded, dataset=dataset, specs=IMAGE_TAXONOMIES)
    specs = image_specs()
    present = _reference_ids_present(dataset.items, [spec.reference_id for spec in specs])
    for spec in specs:
        if spec.reference_id in present:
            loaded.tallies["items"].present += 1
            continue
        item_create(
            dataset=dataset,
            reference_id=spec.reference_id,
            image_file=jpeg_upload(draw_garment(spec), spec.reference_id),
            metadata=spec.metadata,
        )
        loaded.tallies["items"].created += 1
    finished = specs[:FINISHED_IMAGE_COUNT]
    items = _by_reference_id(dataset.items, [spec.reference_id for spec in finished])
    answers = [(items[spec.reference_id], spec.answers()) for spec in finished]
    _annotations_ensure(loaded, taxonomies=taxonomies, answers=answers, annotator=labeler)


def _scenes_fill(loaded: DatasetLoaded, *, dataset: Dataset, labeler) -> None:
    taxonomies = _taxonomies_ensure(loaded, dataset=dataset, specs=SCENE_TAXONOMIES)
    present = _reference_ids_present(dataset.scenes, [spec.reference_id for spec in SCENE_SPECS])
    for spec in SCENE_SPECS:
        if spec.reference_id in present:
            loaded.tallies["scenes"].present += 1
            continue
        frames = [
            {
                "reference_id": spec.frame_reference_id(index),
                "image_file": jpeg_upload(draw_scene_frame(spec, index), spec.frame_reference_id(index)),
            }
            for index in range(FRAMES_PER_SCENE)
        ]
        scene_create(
            dataset=dataset,
            reference_id=spec.reference_id,
            frame_rate=SCENE_FRAME_RATE,
            frames=frames,
            metadata=spec.metadata,
        )
        loaded.tallies["scenes"].created += 1
    finished = SCENE_SPECS[:FINISHED_SCENE_COUNT]
    scenes = _by_reference_id(dataset.scenes, [spec.reference_id for spec in finished])
    answers = [(scenes[spec.reference_id], spec.answers()) for spec in finished]
    _annotations_ensure(loaded, taxonomies=taxonomies, answers=answers, annotator=labeler)


def _reference_ids_present(rows, reference_ids: list[str]) -> set[str]:
    return set(rows.filter(reference_id__in=reference_ids).values_list("reference_id", flat=True))


def _by_reference_id(rows, reference_ids: list[str]) -> dict:
    return {row.reference_id: row for row in rows.filter(reference_id__in=reference_ids)}


def _taxonomies_ensure(
    loaded: DatasetLoaded, *, dataset: Dataset, specs: tuple[TaxonomySpec, ...]
) -> dict[str, Taxonomy]:
    """The demo taxonomies by name. One that an interrupted run created gets the labels it lacks."""
    existing = {taxonomy.taxonomy_name: taxonomy for taxonomy in dataset.taxonomies.all()}
    taxonomies = {}
    for spec in specs:
        taxonomy = existing.get(spec.taxonomy_name)
        if taxonomy is None:
            taxonomy = taxonomy_create(
                dataset=dataset,
                taxonomy_name=spec.taxonomy_name,
                labels=spec.labels,
                multi_label=spec.multi_label,
                applies_to=spec.applies_to,
                required=spec.required,
            )
            loaded.tallies["taxonomies"].created += 1
            loaded.tallies["labels"].created += len(spec.labels)
        else:
            added = taxonomy_add_labels(taxonomy=taxonomy, labels=spec.labels)
            loaded.tallies["taxonomies"].present += 1
            loaded.tallies["labels"].created += len(added)
            loaded.tallies["labels"].present += len(spec.labels) - len(added)
        taxonomies[spec.taxonomy_name] = taxonomy
    return taxonomies


def _annotations_ensure(
    loaded: DatasetLoaded,
    *,
    taxonomies: dict[str, Taxonomy],
    answers: list[tuple[Item | Scene, dict[str, list[str]]]],
    annotator,
) -> None:
    """Save the demo answers that have no annotation yet (an interrupted run saved the others), as finished."""
    labels = {name: {label.name: label for label in taxonomy.labels.all()} for name, taxonomy in taxonomies.items()}
    tally = loaded.tallies["annotations"]
    for target, answer in answers:
        answered = set(target.annotations.values_list("taxonomy_id", flat=True))
        for taxonomy_name, label_names in answer.items():
            taxonomy = taxonomies[taxonomy_name]
            if taxonomy.id in answered:
                tally.present += 1
                continue
            chosen = [labels[taxonomy_name][name] for name in label_names]
            annotation_save(target=target, taxonomy=taxonomy, labels=chosen, annotator=annotator, finished=True)
            tally.created += 1
    # The answered demo items are done: the queue hands out the unlabeled ones.
    if answers:
        tasks_mark_done_if_answered(dataset=answers[0][0].dataset, targets=[target for target, _ in answers], user=annotator)
