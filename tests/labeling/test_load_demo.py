import io
import re
from pathlib import Path

import pytest
from django.apps import apps
from django.conf import settings
from django.contrib.auth import authenticate, get_user_model
from django.core.management import CommandError, call_command
from PIL import Image

from labeling.models import CategoryAnnotation, Dataset, DatasetMember, Item, Scene
from labeling.services.annotations import annotation_save
from labeling.services.taxonomy_removals import taxonomy_remove
from taxonomies.models import Label, Taxonomy
from taxonomies.services import label_delete, label_update, taxonomy_update

pytestmark = pytest.mark.django_db

LOGIN_LINE = re.compile(r"Log in at (\S+) as admin / (\S+) \(labeler / (\S+) for a labeler\)")


@pytest.fixture(autouse=True)
def development_settings(settings):
    """The demo is for the embedded development default; pytest runs with DEBUG off."""
    settings.DEBUG = True


def load_demo(*args: str) -> str:
    out = io.StringIO()
    call_command("load_demo", *args, stdout=out)
    return out.getvalue()


def printed_passwords(output: str) -> dict[str, str]:
    login = LOGIN_LINE.search(output)
    assert login, f"no login line in:\n{output}"
    _, admin_password, labeler_password = login.groups()
    return {"admin": admin_password, "labeler": labeler_password}


def database_rows() -> dict[str, list[dict]]:
    """Every row of every model, passwords left out: each run changes those on purpose."""
    return {
        model._meta.label: [
            {name: value for name, value in row.items() if name != "password"}
            for row in model._default_manager.order_by("pk").values()
        ]
        for model in apps.get_models()
    }


def media_files() -> list[Path]:
    root = Path(settings.MEDIA_ROOT)
    return sorted(path.relative_to(root) for path in root.rglob("*") if path.is_file())


def demo_images() -> Dataset:
    return Dataset.objects.get(name="Demo images")


def demo_scenes() -> Dataset:
    return Dataset.objects.get(name="Demo scenes")


def test_it_creates_the_demo_datasets_with_their_taxonomies():
    load_demo()

    assert demo_images().kind == Dataset.Kind.IMAGES and demo_scenes().kind == Dataset.Kind.SCENES
    taxonomies = {
        (taxonomy.dataset.name, taxonomy.taxonomy_name): taxonomy
        for taxonomy in Taxonomy.objects.select_related("dataset").prefetch_related("labels")
    }
    assert sorted(taxonomies) == [
        ("Demo images", "attributes"),
        ("Demo images", "clothing_type"),
        ("Demo images", "image_quality"),
        ("Demo scenes", "action"),
    ]
    clothing_type = taxonomies["Demo images", "clothing_type"]
    assert clothing_type.label_names() == ["shirt", "pants", "dress", "jacket", "shoes"]
    assert (clothing_type.multi_label, clothing_type.required) == (False, True)
    assert clothing_type.labels.get(name="shirt").hotkey == "h"
    attributes = taxonomies["Demo images", "attributes"]
    assert attributes.label_names() == ["striped", "logo", "long_sleeves"]
    assert (attributes.multi_label, attributes.required) == (True, False)
    action = taxonomies["Demo scenes", "action"]
    assert action.label_names() == ["walking", "running", "standing", "waving"]
    assert (action.applies_to, action.required) == (Taxonomy.AppliesTo.SCENES, True)


def test_the_demo_images_are_decodable_images_with_their_size_stored():
    load_demo()

    items = list(demo_images().items.order_by("reference_id"))
    assert [item.reference_id for item in items] == [f"demo_image_{number:03}" for number in range(1, 37)]
    for item in items:
        assert item.image.name.startswith(f"items/{item.dataset_id}/")
        with Image.open(item.image.path) as image:
            image.load()
            assert image.size == (item.width, item.height) == (640, 480)
        assert item.metadata["source"] == "demo"
        assert item.metadata["drawn"] in {"shirt", "pants", "dress", "jacket", "shoes"}


def test_each_demo_scene_is_a_sequence_of_ordered_frames():
    load_demo()

    scenes = list(demo_scenes().scenes.order_by("reference_id"))
    assert [scene.metadata["drawn"] for scene in scenes] == ["walking", "running", "standing"]
    for scene in scenes:
        frames = list(scene.frames.order_by("frame_index"))
        assert [frame.frame_index for frame in frames] == list(range(10))
        assert [frame.reference_id for frame in frames] == [f"{scene.reference_id}_frame_{index:02}" for index in range(10)]
        assert all(frame.image and (frame.width, frame.height) == (640, 480) for frame in frames)


def test_the_first_demo_images_and_scene_have_finished_annotations_that_match_the_drawing():
    load_demo()
    labeler = get_user_model().objects.get(username="labeler")

    clothing_types = CategoryAnnotation.objects.filter(taxonomy__taxonomy_name="clothing_type").select_related("item", "label")
    assert sorted(annotation.item.reference_id for annotation in clothing_types) == [
        f"demo_image_{number:03}" for number in range(1, 7)
    ]
    for annotation in clothing_types:
        assert annotation.label.name == annotation.item.metadata["drawn"]
    assert CategoryAnnotation.objects.filter(taxonomy__taxonomy_name="attributes").count() == 6
    walking = CategoryAnnotation.objects.get(scene__reference_id="demo_scene_001")
    assert walking.chosen_label_names() == ["walking"]
    annotations = CategoryAnnotation.objects.all()
    assert {(annotation.status, annotation.sync_state, annotation.annotator) for annotation in annotations} == {
        ("finished", "pending", labeler)
    }


def test_running_it_twice_creates_nothing_new():
    load_demo()
    rows, files = database_rows(), media_files()

    output = load_demo()

    assert database_rows() == rows
    assert media_files() == files
    assert len(files) == 36 + 3 * 10
    assert re.findall(r"(\d+) created", output) == []
    assert output.count("already loaded: left as it is") == 2


def test_it_prints_a_login_that_works(client):
    passwords = printed_passwords(load_demo())

    assert authenticate(username="labeler", password=passwords["labeler"]) is not None
    assert client.login(username="admin", password=passwords["admin"])
    assert client.get("/admin/").status_code == 200


def test_every_run_gives_the_demo_users_new_passwords():
    first = printed_passwords(load_demo())
    second = printed_passwords(load_demo())

    for username in ("admin", "labeler"):
        assert second[username] != first[username]
        assert authenticate(username=username, password=first[username]) is None
        assert authenticate(username=username, password=second[username]) is not None


def test_keep_passwords_leaves_passwords_alone():
    passwords = printed_passwords(load_demo())

    output = load_demo("--keep-passwords")

    assert "as admin / (password unchanged) (labeler / (password unchanged) for a labeler)" in output
    for username, password in passwords.items():
        assert authenticate(username=username, password=password) is not None


def test_keep_passwords_still_gives_new_demo_users_a_password():
    passwords = printed_passwords(load_demo("--keep-passwords"))

    for username, password in passwords.items():
        assert authenticate(username=username, password=password) is not None


def test_it_prints_the_url_it_is_given():
    output = load_demo("--url", "https://demo.example.com:8443/")

    assert "Log in at https://demo.example.com:8443/ as admin / " in output
    assert "admin pages at https://demo.example.com:8443/admin/" in output


def test_the_demo_users_have_their_roles_in_both_datasets():
    load_demo()
    admin, labeler = (get_user_model().objects.get(username=username) for username in ("admin", "labeler"))

    assert admin.is_staff and admin.is_superuser
    assert not labeler.is_staff and not labeler.is_superuser
    roles = set(DatasetMember.objects.values_list("dataset__name", "user__username", "role"))
    assert roles == {
        ("Demo images", "admin", "admin"),
        ("Demo images", "labeler", "labeler"),
        ("Demo scenes", "admin", "admin"),
        ("Demo scenes", "labeler", "labeler"),
    }


def admin_edits_then_load_demo_again(edit) -> None:
    """Load the demo, edit it as an admin would, load it again: the run succeeds, leaves every row as
    the admin left it and still gives the demo users new passwords."""
    first = printed_passwords(load_demo())
    edit()
    rows = database_rows()

    second = printed_passwords(load_demo())  # call_command raises on a failed run

    assert database_rows() == rows
    for username in ("admin", "labeler"):
        assert authenticate(username=username, password=second[username]) is not None
        assert authenticate(username=username, password=first[username]) is None


def test_a_renamed_demo_taxonomy_is_not_created_again():
    def rename():
        attributes = Taxonomy.objects.get(taxonomy_name="attributes")
        taxonomy_update(taxonomy=attributes, taxonomy_name="details", applies_to=attributes.applies_to, required=False, position=attributes.position)

    admin_edits_then_load_demo_again(rename)
    assert set(demo_images().taxonomies.values_list("taxonomy_name", flat=True)) == {"clothing_type", "details", "image_quality"}


def test_a_hotkey_the_demo_gives_a_removed_label_can_be_given_to_another():
    def rekey():
        action = Taxonomy.objects.get(taxonomy_name="action")
        label_delete(label=action.labels.get(name="waving"))
        running = action.labels.get(name="running")
        label_update(label=running, name=running.name, hotkey="v", position=running.position)  # waving's key in the demo

    admin_edits_then_load_demo_again(rekey)
    action = Taxonomy.objects.get(taxonomy_name="action")
    assert [(label.name, label.hotkey) for label in action.labels.all()] == [("walking", "w"), ("running", "v"), ("standing", "t")]


def test_a_label_moved_to_another_hotkey_keeps_it():
    def rekey():
        dress = Label.objects.get(taxonomy__taxonomy_name="clothing_type", name="dress")
        label_update(label=dress, name=dress.name, hotkey="x", position=dress.position)

    admin_edits_then_load_demo_again(rekey)
    assert Label.objects.get(taxonomy__taxonomy_name="clothing_type", name="dress").hotkey == "x"


def test_a_deleted_demo_taxonomy_is_not_brought_back():
    admin_edits_then_load_demo_again(lambda: taxonomy_remove(taxonomy=Taxonomy.objects.get(taxonomy_name="image_quality"), confirm=True))
    assert not Taxonomy.objects.filter(taxonomy_name="image_quality").exists()


def test_deleted_demo_items_and_scenes_are_not_brought_back():
    def delete():
        Item.objects.filter(dataset=demo_images(), reference_id__gt="demo_image_030").delete()
        Scene.objects.filter(reference_id="demo_scene_003").delete()

    admin_edits_then_load_demo_again(delete)
    assert demo_images().items.count() == 30 and demo_scenes().scenes.count() == 2


def test_a_deleted_demo_dataset_is_loaded_afresh():
    load_demo()
    demo_scenes().delete()

    output = load_demo()

    assert demo_scenes().scenes.count() == 3
    assert re.search(r"scenes\s+3 created,\s+0 already present", output)


def test_a_demo_annotation_someone_changed_keeps_their_answer():
    load_demo()
    shirt_item = Item.objects.get(reference_id="demo_image_001")
    clothing_type = Taxonomy.objects.get(taxonomy_name="clothing_type")
    annotation_save(
        target=shirt_item,
        taxonomy=clothing_type,
        labels=[clothing_type.labels.get(name="jacket")],
        annotator=get_user_model().objects.get(username="admin"),
        finished=True,
    )

    load_demo()

    annotation = CategoryAnnotation.objects.get(item=shirt_item, taxonomy=clothing_type)
    assert (annotation.label.name, annotation.version, annotation.annotator.username) == ("jacket", 2, "admin")


def test_a_run_that_stopped_half_way_is_completed_by_the_next():
    load_demo()
    # What a run stopped half-way leaves: the datasets under their working names, some rows missing.
    for dataset in (demo_images(), demo_scenes()):
        Dataset.objects.filter(pk=dataset.pk).update(name=f"{dataset.name} (loading)")
    Item.objects.filter(dataset__name="Demo images (loading)", reference_id__gt="demo_image_030").delete()
    Scene.objects.filter(reference_id="demo_scene_003").delete()

    output = load_demo()

    assert not Dataset.objects.filter(name__endswith="(loading)").exists()
    assert demo_images().items.count() == 36 and demo_scenes().scenes.count() == 3
    assert re.search(r"items\s+6 created,\s+30 already present", output)
    assert re.search(r"scenes\s+1 created,\s+2 already present", output)


def test_it_refuses_to_run_with_debug_off_unless_forced(settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="Pass --force"):
        load_demo()
    assert not Dataset.objects.exists()
    assert "Log in at" in load_demo("--force")


def test_the_demo_answers_close_their_tasks_so_the_queue_hands_out_unlabeled_items(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):  # what eager mode runs after each commit: the images' check
        load_demo()
    images = Dataset.objects.get(name="Demo images")
    assert images.tasks.filter(state="done").count() == 6
    assert images.tasks.filter(state="open").order_by("id").first().item.reference_id == "demo_image_007"
