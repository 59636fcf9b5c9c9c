"""A dataset with `nucleus_push_items`: each sync appends the items or scenes Nucleus lacks before
sending annotations, and an annotation whose item or scene is not there yet waits, pending.
`sync_nucleus --push-items` does the same once for a dataset without the option."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from labeling.models import CategoryAnnotation, Item
from labeling.services.items import item_create
from labeling.services.sync import sync_waiting_for_items
from taxonomies.services import taxonomy_create
from tests.factories import ItemFactory, SceneFactory, png_upload, with_permission
from tests.labeling.sync.support import finish, sync

pytestmark = pytest.mark.django_db
State = CategoryAnnotation.SyncState


@pytest.fixture
def pushing(linked):
    linked.nucleus_push_items = True
    linked.save(update_fields=["nucleus_push_items"])
    return linked


@pytest.fixture
def clothing_type(linked):
    return taxonomy_create(dataset=linked, taxonomy_name="clothing_type", labels=["shirt", "pants"])


def test_the_sync_appends_the_items_first_then_sends_their_annotations(pushing, clothing_type, fake_nucleus):
    items = [ItemFactory(dataset=pushing, reference_id=f"image_{n}") for n in range(2)]
    for item in items:
        finish(item, clothing_type, "shirt")

    report = sync(pushing)

    routes = [request.route for request in fake_nucleus.requests if request.route in ("append", "annotate")]
    assert routes == ["append", "annotate"]
    assert report.items_appended == 2 and report.synced == 2
    assert fake_nucleus.labels(pushing.nucleus_dataset_id) == {("image_0", "clothing_type"): "shirt", ("image_1", "clothing_type"): "shirt"}


def test_annotations_of_items_nucleus_would_not_take_wait_pending(pushing, clothing_type, fake_nucleus):
    here = ItemFactory(dataset=pushing, reference_id="image_0")
    refused = ItemFactory(dataset=pushing, reference_id="image_1")
    finish(here, clothing_type, "shirt")
    waiting = finish(refused, clothing_type, "pants")
    fake_nucleus.fail_next(500, route="append")  # the first append job cannot be sent

    report = sync(pushing)

    assert report.synced == 0 and any("Appending items to Nucleus" in error for error in report.errors)
    assert fake_nucleus.requests_to("annotate") == []
    assert sync_waiting_for_items(dataset=pushing) == 2
    waiting.refresh_from_db()
    assert (waiting.sync_state, waiting.sync_attempts, waiting.sync_error) == (State.PENDING, 0, "")

    assert sync(pushing).synced == 2  # the next sync appends them, then sends their annotations


def test_uploads_without_a_public_url_wait_and_the_page_says_why(pushing, clothing_type, fake_nucleus, admin, client, settings):
    settings.PUBLIC_MEDIA_URL = ""
    uploaded = item_create(dataset=pushing, reference_id="upload_0", image_file=png_upload())
    on_nucleus = ItemFactory(dataset=pushing, reference_id="image_0", nucleus_uploaded_at=uploaded.created_at)
    fake_nucleus.add_items(pushing.nucleus_dataset_id, [{"reference_id": "image_0", "image_url": on_nucleus.image_url}])
    finish(uploaded, clothing_type, "shirt")
    finish(on_nucleus, clothing_type, "pants")

    report = sync(pushing)
    client.force_login(admin)
    page = client.get(reverse("labeling:dataset-sync", kwargs={"dataset_id": pushing.id}))

    assert report.synced == 1 and fake_nucleus.labels(pushing.nucleus_dataset_id) == {("image_0", "clothing_type"): "pants"}
    assert page.context["waiting_for_items"] == 1
    assert "PUBLIC_MEDIA_URL" in page.context["push_blocker"]
    assert "1 pending annotation(s) wait until theirs are there" in " ".join(page.content.decode().split())


def test_a_frame_is_on_nucleus_with_its_scene(linked_scenes, fake_nucleus):
    linked_scenes.nucleus_push_items = True
    linked_scenes.save()
    scene = SceneFactory(dataset=linked_scenes, reference_id="scene_0", video_url="")
    frame = ItemFactory(dataset=linked_scenes, scene=scene, frame_index=0, reference_id="scene_0_frame_0")
    per_frame = taxonomy_create(dataset=linked_scenes, taxonomy_name="weather", labels=["sunny"], applies_to="items")
    per_scene = taxonomy_create(dataset=linked_scenes, taxonomy_name="place", labels=["city"], applies_to="scenes")
    finish(frame, per_frame, "sunny")
    finish(scene, per_scene, "city")
    assert sync_waiting_for_items(dataset=linked_scenes) == 2

    report = sync(linked_scenes)

    assert report.items_appended == 1 and sync_waiting_for_items(dataset=linked_scenes) == 0
    (annotate,) = fake_nucleus.requests_to("annotate")  # both were sent (the fake knows no frames of a scene)
    assert sorted(payload["reference_id"] for payload in annotate.json["annotations"]) == ["scene_0", "scene_0_frame_0"]


def test_without_the_option_nothing_is_appended(linked, clothing_type, fake_nucleus):
    finish(ItemFactory(dataset=linked, reference_id="image_0"), clothing_type, "shirt")

    report = sync(linked)

    assert fake_nucleus.requests_to("append") == []
    assert report.failed == 1  # Nucleus does not know image_0


class TestCommand:
    def test_push_items_appends_once_for_a_dataset_without_the_option(self, linked, clothing_type, fake_nucleus):
        finish(ItemFactory(dataset=linked, reference_id="image_0"), clothing_type, "shirt")
        out = StringIO()

        call_command("sync_nucleus", str(linked.id), "--push-items", stdout=out, stderr=StringIO(), verbosity=0)

        assert "1 items or scenes appended to Nucleus, 1 synced" in out.getvalue()
        linked.refresh_from_db()
        assert linked.nucleus_push_items is False
        assert not Item.objects.filter(dataset=linked, nucleus_uploaded_at__isnull=True).exists()

    def test_it_fails_while_annotations_wait_for_their_items(self, pushing, clothing_type, fake_nucleus):
        finish(ItemFactory(dataset=pushing, reference_id="image_0"), clothing_type, "shirt")
        fake_nucleus.fail_next(500, route="append")
        err = StringIO()

        with pytest.raises(CommandError):
            call_command("sync_nucleus", str(pushing.id), stdout=StringIO(), stderr=err, verbosity=0)

        assert "1 annotations wait for their item or scene to be appended to Nucleus" in err.getvalue()


class TestSettingIt:
    def test_the_api_sets_and_shows_it(self, pushing, admin):
        from rest_framework.test import APIClient

        client = APIClient()
        client.force_authenticate(admin)
        url = reverse("api:dataset-detail", kwargs={"dataset_id": pushing.id})

        assert client.get(url).json()["nucleus_push_items"] is True
        answer = client.patch(url, {"nucleus_push_items": False}, format="json")

        assert answer.status_code == 200 and answer.json()["nucleus_push_items"] is False
        pushing.refresh_from_db()
        assert pushing.nucleus_push_items is False and pushing.nucleus_dataset_id  # the link is kept

    def test_a_new_dataset_can_have_it(self, admin, db):
        from rest_framework.test import APIClient

        client = APIClient()
        client.force_authenticate(with_permission(admin, "labeling.add_dataset"))

        answer = client.post(reverse("api:dataset-list"), {"name": "Pushed", "nucleus_push_items": True}, format="json")

        assert answer.status_code == 201 and answer.json()["nucleus_push_items"] is True
