"""Uploaded images: the request checks only the header and the caps; the full decode runs after the
commit in a child process under hard CPU-time and memory limits (here in eager mode: the captured
on-commit callbacks are what the request runs once it has committed; tests/labeling/sync/
test_image_worker.py runs them on a real worker). Until it passes, the item's task waits."""

import resource
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from labeling.errors import BatchInvalid
from labeling.images import image_verify_in_child
from labeling.models import DatasetMember, Item, Scene, Task
from labeling.selectors import dataset_progress
from labeling.services.images import item_images_verify, item_images_verify_sweep
from labeling.services.items import item_create, items_import, scene_create
from tests.factories import DatasetFactory, png_upload
from tests.labeling.api.support import errors_of, row_counts, token_client, url
from tests.labeling.image_files import flat_png, jpeg_with_orientation, png_file

pytestmark = pytest.mark.django_db


def post_images(client, dataset, images):
    return client.post(url("item-list", dataset_id=dataset.id), {"images": images}, format="multipart")


def truncated_png(name: str = "cut.png"):
    data = png_upload(size=(200, 200), color="green").read()
    return png_file(name, data[: len(data) // 2])


@pytest.fixture
def admin_client(admin):
    return token_client(admin)


@pytest.fixture
def labeler_client(labeler):
    return token_client(labeler)


@pytest.fixture
def verified(django_capture_on_commit_callbacks):
    """Run what the request runs after its commit (the verification, eagerly) for the block's writes."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


@pytest.fixture(scope="session")
def png_16000(tmp_path_factory) -> Path:
    """A 256-megapixel flat PNG (~780 KB): its decode needs ~2.5 s of CPU and ~1 GB; made once."""
    path = tmp_path_factory.mktemp("images") / "flat_16000.png"
    path.write_bytes(flat_png(16000, 16000))
    return path


def listed(client, dataset) -> list[dict]:
    return client.get(url("item-list", dataset_id=dataset.id)).json()["results"]


class TestTheRequest:
    def test_a_good_upload_is_stored_pending_with_its_task_waiting_and_says_so(self, admin_client, dataset, django_capture_on_commit_callbacks):
        with django_capture_on_commit_callbacks(execute=False):
            response = post_images(admin_client, dataset, [png_upload("shirt.png", (30, 20))])
        assert response.status_code == 201
        item = Item.objects.get()
        assert (item.image_check, item.task.state, item.width, item.height) == ("pending", "waiting", 30, 20)
        (shown,) = listed(admin_client, dataset)
        assert (shown["image_check"], shown["status"], shown["image_error"]) == ("pending", "waiting", "")

    def test_it_does_not_decode_the_image(self, admin_client, dataset, django_capture_on_commit_callbacks):
        bomb = flat_png(9990, 9990)  # under the pixel cap; decoding it costs ~1 s of CPU and ~415 MB
        before = resource.getrusage(resource.RUSAGE_SELF)
        with django_capture_on_commit_callbacks(execute=False):
            response = post_images(admin_client, dataset, [png_file("bomb.png", bomb)])
        after = resource.getrusage(resource.RUSAGE_SELF)
        assert response.status_code == 201
        assert (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime) < 0.5
        assert Item.objects.get().image_check == "pending"

    def test_it_refuses_a_request_over_the_pixels_of_one_request_naming_the_first_image_past_it(self, admin_client, dataset, settings):
        settings.MAX_IMAGE_PIXELS_PER_REQUEST = 1000
        before = row_counts()
        response = post_images(admin_client, dataset, [png_upload(f"{n}.png", (20, 20)) for n in range(3)])
        assert response.status_code == 400
        assert errors_of(response) == [
            {
                "index": 2, "field": "image_file",
                "message": "The images up to this one have 1200 pixels together; one request may carry 1000. Send the rest in another request.",
            }
        ]
        assert row_counts() == before
        assert not any(path.is_file() for path in Path(settings.MEDIA_ROOT).rglob("*"))

    def test_it_refuses_an_image_over_the_byte_cap(self, admin_client, dataset, settings):
        upload = png_upload("big.png", (20, 20))
        settings.MAX_IMAGE_UPLOAD_BYTES = upload.size - 1
        response = post_images(admin_client, dataset, [upload])
        assert errors_of(response) == [
            {"index": 0, "field": "image_file", "message": f"The image is {upload.size} bytes; the limit is {upload.size - 1}."}
        ]
        assert not Item.objects.exists()

    def test_an_image_by_url_is_not_held_back(self, admin_client, dataset, django_capture_on_commit_callbacks):
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            response = admin_client.post(url("item-list", dataset_id=dataset.id), [{"reference_id": "u", "image_url": "https://a.test/u.jpg"}], format="json")
        assert response.status_code == 201
        item = Item.objects.get()
        assert (item.image_check, item.task.state, callbacks) == ("ok", "open", [])


class TestVerification:
    def test_it_makes_a_good_upload_ok_and_its_task_open(self, admin_client, labeler_client, dataset, verified):
        with verified():
            post_images(admin_client, dataset, [png_upload("shirt.png", (30, 20))])
        item = Item.objects.get()
        assert (item.image_check, item.image_error, item.task.state, item.width, item.height) == ("ok", "", "open", 30, 20)
        assert labeler_client.post(url("next", dataset_id=dataset.id)).json()["reference_id"] == "shirt"

    def test_a_truncated_image_fails_says_why_and_is_never_handed_out(self, admin_client, labeler_client, dataset, verified):
        with verified():
            assert post_images(admin_client, dataset, [truncated_png()]).status_code == 201
        item = Item.objects.get()
        assert (item.image_check, item.task.state) == ("failed", "waiting")
        assert item.image_error.startswith("The image could not be decoded (")
        (shown,) = listed(admin_client, dataset)
        assert (shown["image_check"], shown["image_error"], shown["status"]) == ("failed", item.image_error, "waiting")
        assert labeler_client.post(url("next", dataset_id=dataset.id)).status_code == 204

    def test_a_bomb_over_the_memory_limit_is_killed_and_fails(self, admin_client, labeler_client, dataset, settings, verified):
        settings.IMAGE_VERIFY_MEMORY_MB = 128  # a 6000 x 6000 image needs 144 MB of pixels
        with verified():
            post_images(admin_client, dataset, [png_file("bomb.png", flat_png(6000, 6000))])
        item = Item.objects.get()
        assert (item.image_check, item.task.state) == ("failed", "waiting")
        assert item.image_error == "Decoding the image needs more than the 128 MB of memory allowed (IMAGE_VERIFY_MEMORY_MB)."
        assert labeler_client.post(url("next", dataset_id=dataset.id)).status_code == 204

    def test_a_decode_over_the_cpu_time_limit_is_killed(self, settings, png_16000):
        settings.MAX_IMAGE_PIXELS, settings.IMAGE_VERIFY_MEMORY_MB = 300_000_000, 4096
        settings.IMAGE_VERIFY_CPU_SECONDS, settings.IMAGE_VERIFY_TIMEOUT_SECONDS = 1, 60
        with png_16000.open("rb") as stream:
            verdict = image_verify_in_child(stream)
        assert verdict.error == "Decoding the image took more than the 1 s of CPU time allowed (IMAGE_VERIFY_CPU_SECONDS)."

    def test_a_child_still_running_at_the_timeout_is_stopped(self, settings, png_16000):
        settings.MAX_IMAGE_PIXELS, settings.IMAGE_VERIFY_MEMORY_MB = 300_000_000, 4096
        settings.IMAGE_VERIFY_CPU_SECONDS, settings.IMAGE_VERIFY_TIMEOUT_SECONDS = 60, 1
        with png_16000.open("rb") as stream:
            verdict = image_verify_in_child(stream)
        assert verdict.error == "Checking the image did not finish within 1 s and was stopped."

    def test_the_same_image_passes_within_its_limits(self, settings, png_16000):
        settings.MAX_IMAGE_PIXELS, settings.IMAGE_VERIFY_MEMORY_MB = 300_000_000, 4096
        settings.IMAGE_VERIFY_CPU_SECONDS, settings.IMAGE_VERIFY_TIMEOUT_SECONDS = 60, 60
        with png_16000.open("rb") as stream:
            verdict = image_verify_in_child(stream)
        assert (verdict.width, verdict.height, verdict.error) == (16000, 16000, "")

    def test_running_it_again_changes_nothing(self, dataset, verified):
        with verified():
            item = item_create(dataset=dataset, reference_id="a", image_file=png_upload())
        assert item_images_verify(item_ids=[item.id]) == {"ok": 0, "failed": 0}
        assert Item.objects.get().image_check == "ok"

    def test_a_scene_waits_until_every_frame_passed(self, verified):
        scenes = DatasetFactory(name="Drives", kind="scenes")
        with verified():
            good = scene_create(dataset=scenes, reference_id="good", frame_rate=5, frames=[{"reference_id": f"g{n}", "image_file": png_upload()} for n in range(2)])
            bad = scene_create(
                dataset=scenes, reference_id="bad", frame_rate=5,
                frames=[{"reference_id": "b0", "image_file": png_upload()}, {"reference_id": "b1", "image_file": truncated_png()}],
            )
        assert Task.objects.get(scene=good).state == "open"
        assert Task.objects.get(scene=bad).state == "waiting"
        assert dict(Item.objects.filter(scene=bad).values_list("reference_id", "image_check")) == {"b0": "ok", "b1": "failed"}

    def test_an_uploaded_scene_frame_is_pending_until_verified(self, django_capture_on_commit_callbacks):
        scenes = DatasetFactory(name="Drives", kind="scenes")
        with django_capture_on_commit_callbacks(execute=False):
            scene = scene_create(dataset=scenes, reference_id="s", frame_rate=5, frames=[{"reference_id": "f0", "image_file": png_upload()}])
        assert (Task.objects.get(scene=scene).state, Item.objects.get(scene=scene).image_check) == ("waiting", "pending")

    def test_the_sweep_verifies_uploads_left_pending_too_long(self, dataset, settings, django_capture_on_commit_callbacks):
        with django_capture_on_commit_callbacks(execute=False):  # the message is lost
            item = item_create(dataset=dataset, reference_id="a", image_file=png_upload())
        assert item_images_verify_sweep() == 0  # not stale yet
        Item.objects.filter(pk=item.pk).update(created_at=item.created_at.replace(year=item.created_at.year - 1))
        assert item_images_verify_sweep() == 1
        assert (Item.objects.get().image_check, Task.objects.get().state) == ("ok", "open")


class TestExifOrientation:
    @pytest.mark.parametrize("orientation, displayed", [(1, (30, 20)), (3, (30, 20)), (6, (20, 30)), (8, (20, 30))])
    def test_width_and_height_are_stored_as_displayed(self, dataset, verified, django_capture_on_commit_callbacks, orientation, displayed):
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            item_create(dataset=dataset, reference_id="photo", image_file=jpeg_with_orientation("photo.jpg", (30, 20), orientation))
        assert (Item.objects.get().width, Item.objects.get().height) == displayed  # from the header
        Item.objects.update(width=None, height=None)
        for callback in callbacks:
            callback()
        item = Item.objects.get()
        assert (item.image_check, item.width, item.height) == ("ok", *displayed)  # from the decode


class TestProgress:
    def test_a_failed_image_is_no_work_left_and_the_list_page_says_so(self, client, dataset, admin, verified):
        with verified():
            items_import(dataset=dataset, rows=[{"reference_id": "good", "image_file": png_upload()}, {"reference_id": "bad", "image_file": truncated_png()}])
            item_create(dataset=dataset, reference_id="url", image_url="https://a.test/u.jpg")
        progress = dataset_progress(dataset=dataset, user=admin)
        assert (progress["total"], progress["done"], progress["checking"], progress["failed_images"]) == (2, 0, 0, 1)
        client.force_login(admin)
        page = client.get(reverse("labeling:dataset-list")).content.decode()
        assert "0 / 2 finished" in page and "1 image failed its check and will not be labeled" in page

    def test_items_being_checked_count_as_work_to_come(self, client, dataset, admin, django_capture_on_commit_callbacks):
        with django_capture_on_commit_callbacks(execute=False):
            item_create(dataset=dataset, reference_id="a", image_file=png_upload())
        progress = dataset_progress(dataset=dataset, user=admin)
        assert (progress["total"], progress["checking"], progress["failed_images"]) == (1, 1, 0)
        client.force_login(admin)
        assert "1 waiting for its image to be checked" in client.get(reverse("labeling:dataset-list")).content.decode()


    def test_a_scene_with_a_failed_frame_is_no_work_left_and_the_list_page_says_so(
        self, client, dataset, admin, verified, django_capture_on_commit_callbacks
    ):
        scenes = DatasetFactory(name="Drives", kind="scenes")
        DatasetMember.objects.create(dataset=scenes, user=admin, role="admin")
        with verified():
            scene_create(dataset=scenes, reference_id="good", frame_rate=5, frames=[{"reference_id": "g0", "image_file": png_upload()}])
            scene_create(
                dataset=scenes, reference_id="bad", frame_rate=5,
                frames=[{"reference_id": "b0", "image_file": png_upload()}, {"reference_id": "b1", "image_file": truncated_png()}],
            )
            # The images dataset beside it, in the same grouped query of the list page: its counts stay its own.
            item_create(dataset=dataset, reference_id="url", image_url="https://a.test/u.jpg")
        with django_capture_on_commit_callbacks(execute=False):
            scene_create(dataset=scenes, reference_id="later", frame_rate=5, frames=[{"reference_id": "l0", "image_file": png_upload()}])
        progress = dataset_progress(dataset=scenes, user=admin)
        assert (progress["total"], progress["done"], progress["checking"], progress["failed_images"]) == (2, 0, 1, 1)
        client.force_login(admin)
        page = client.get(reverse("labeling:dataset-list")).content.decode()
        assert "0 / 2 finished" in page and "1 scene has a frame that failed its check and will not be labeled" in page
        assert "1 waiting for its image to be checked" in page and "0 / 1 finished" in page
        assert page.count('class="failed-images"') == 1


def test_a_refused_batch_starts_no_verification(dataset, settings, django_capture_on_commit_callbacks):
    settings.MAX_IMAGE_PIXELS_PER_REQUEST = 1
    with django_capture_on_commit_callbacks(execute=False) as callbacks, pytest.raises(BatchInvalid):
        items_import(dataset=dataset, rows=[{"reference_id": "a", "image_file": png_upload()}])
    assert (callbacks, Item.objects.count(), Scene.objects.count()) == ([], 0, 0)


class TestAnInterruptedEagerVerification:
    """Eager mode runs the verification in the on-commit callbacks of the upload's own call; an
    interrupt there (Ctrl-C, a worker timeout's SystemExit) comes after the rows are committed."""

    @pytest.fixture
    def interrupted(self, monkeypatch):
        def interrupt(stream):
            raise KeyboardInterrupt

        monkeypatch.setattr("labeling.services.images.image_verify_in_child", interrupt)
        return monkeypatch

    @pytest.mark.django_db(transaction=True)
    def test_it_keeps_the_committed_upload_pending_and_verify_images_finishes_it(self, settings, interrupted):
        assert settings.CELERY_TASK_ALWAYS_EAGER
        dataset, other = DatasetFactory(name="Interrupted"), DatasetFactory(name="Other")
        with pytest.raises(KeyboardInterrupt):
            item_create(dataset=dataset, reference_id="photo", image_file=png_file("photo.png", flat_png(40, 30)))
        with pytest.raises(KeyboardInterrupt):
            item_create(dataset=other, reference_id="photo", image_file=png_file("photo.png", flat_png(40, 30)))
        item = Item.objects.get(dataset=dataset)  # committed before the interrupt
        assert (item.image_check, Task.objects.get(item=item).state) == ("pending", "waiting")
        assert item.image.storage.exists(item.image.name), "the committed item's upload was deleted"

        interrupted.undo()
        out = StringIO()
        call_command("verify_images", "--dataset", str(dataset.id), stdout=out)
        assert out.getvalue() == "1 image(s) passed their check, 0 failed.\n"
        item.refresh_from_db()
        assert (item.image_check, item.width, item.height, Task.objects.get(item=item).state) == ("ok", 40, 30, "open")
        assert Item.objects.get(dataset=other).image_check == "pending"  # --dataset keeps to its dataset
        call_command("verify_images", stdout=out)
        assert Item.objects.get(dataset=other).image_check == "ok"

    @pytest.mark.django_db(transaction=True)
    def test_it_keeps_the_committed_frames_of_a_scene(self, interrupted):
        scenes = DatasetFactory(name="Drives", kind="scenes")
        with pytest.raises(KeyboardInterrupt):
            scene_create(dataset=scenes, reference_id="s", frame_rate=5, frames=[{"reference_id": "f0", "image_file": png_upload()}])
        frame = Item.objects.get(dataset=scenes)
        assert (frame.image_check, Task.objects.get(scene=frame.scene).state) == ("pending", "waiting")
        assert frame.image.storage.exists(frame.image.name)

    def test_verify_images_names_an_unknown_dataset(self):
        with pytest.raises(CommandError, match="There is no dataset 999999."):
            call_command("verify_images", "--dataset", "999999")
