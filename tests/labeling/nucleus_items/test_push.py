"""`manage.py push_nucleus_items` and `nucleus_items_push`: local items and scenes appended to the
linked Nucleus dataset before their annotations, each once."""

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from labeling.models import Item, Scene
from labeling.services.items import item_create, scene_create
from labeling.services.nucleus_items import nucleus_items_push
from tests.factories import ItemFactory, SceneFactory, png_upload

pytestmark = pytest.mark.django_db


def push(dataset, *args) -> str:
    out = StringIO()
    call_command("push_nucleus_items", str(dataset.id), *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def on_nucleus(fake_nucleus, dataset):
    """The fake's state of the linked dataset (its items and scenes have no public reader)."""
    return fake_nucleus._datasets[dataset.nucleus_dataset_id]


def uploaded_lines(fake_nucleus) -> list[dict]:
    return [json.loads(line) for request in fake_nucleus.requests_to("signed_upload") for line in request.body.splitlines()]


def test_it_appends_the_items_nucleus_lacks_with_update_false_and_records_them(linked, fake_nucleus):
    made = [ItemFactory(dataset=linked, reference_id=f"image_{n}", metadata={"n": n}) for n in range(3)]

    output = push(linked)

    assert fake_nucleus.requests_to("append")[0].json["update"] is False
    assert uploaded_lines(fake_nucleus) == [
        {"metadata": {"n": n}, "reference_id": f"image_{n}", "image_url": f"https://images.example.com/image_{n}.jpg"} for n in range(3)
    ]
    assert sorted(on_nucleus(fake_nucleus, linked).items) == [item.reference_id for item in made]
    assert not Item.objects.filter(dataset=linked, nucleus_uploaded_at__isnull=True).exists()
    assert "3 appended to Nucleus, 0 not (1 jobs)" in output


def test_a_second_push_sends_nothing(linked, fake_nucleus):
    ItemFactory(dataset=linked)
    push(linked)

    assert "0 appended to Nucleus, 0 not (0 jobs)" in push(linked)
    assert len(fake_nucleus.requests_to("append")) == 1


def test_it_sends_in_batches(linked, fake_nucleus):
    for n in range(5):
        ItemFactory(dataset=linked, reference_id=f"image_{n}")

    push(linked, "--batch-size", "2")

    assert len(fake_nucleus.requests_to("append")) == 3
    assert len(on_nucleus(fake_nucleus, linked).items) == 5


def test_an_item_a_job_error_names_is_not_recorded_and_the_others_are(linked, fake_nucleus, monkeypatch):
    good = ItemFactory(dataset=linked, reference_id="image_1")
    bad = ItemFactory(dataset=linked, reference_id="image_10")
    real_finish = fake_nucleus._finish_job

    def finish_with_an_error(job_type, message, errors):
        return real_finish(job_type, message, [*errors, "Could not fetch image for reference_id 'image_10'"])

    monkeypatch.setattr(fake_nucleus, "_finish_job", finish_with_an_error)

    with pytest.raises(CommandError, match="Run the command again"):
        push(linked)

    good.refresh_from_db(), bad.refresh_from_db()
    assert good.nucleus_uploaded_at is not None
    assert bad.nucleus_uploaded_at is None


def test_nucleus_down_stops_the_push_and_records_nothing(linked, fake_nucleus):
    ItemFactory(dataset=linked)
    fake_nucleus.fail_next(503, route="append")

    report = nucleus_items_push(dataset=linked)

    assert (report.uploaded, report.failed) == (0, 1)
    assert "HTTP 503" in report.errors[0]
    assert Item.objects.get(dataset=linked).nucleus_uploaded_at is None


def test_uploaded_images_are_refused_without_a_public_media_url(linked, settings):
    settings.PUBLIC_MEDIA_URL = ""
    item_create(dataset=linked, reference_id="photo", image_file=png_upload())

    with pytest.raises(CommandError, match="set PUBLIC_MEDIA_URL"):
        push(linked)


def test_uploaded_images_are_given_to_nucleus_under_the_public_media_url(linked, fake_nucleus, settings):
    settings.PUBLIC_MEDIA_URL = "https://media.example.com/labels/"
    item = item_create(dataset=linked, reference_id="photo", image_file=png_upload())

    push(linked)

    assert uploaded_lines(fake_nucleus)[0]["image_url"] == f"https://media.example.com/labels/{item.image.name}"


def test_items_pulled_from_nucleus_are_not_pushed_back(linked, fake_nucleus):
    fake_nucleus.add_items(linked.nucleus_dataset_id, [{"reference_id": "nu_1", "image_url": "https://images.example.com/1.jpg"}])
    call_command("pull_nucleus_items", str(linked.id), stdout=StringIO(), stderr=StringIO())

    assert nucleus_items_push(dataset=linked).uploaded == 0
    assert not fake_nucleus.requests_to("append")


def test_a_dry_run_lists_what_would_be_sent_and_sends_nothing(linked, fake_nucleus):
    ItemFactory(dataset=linked, reference_id="image_1")

    output = push(linked, "--dry-run")

    assert "image_1\thttps://images.example.com/image_1.jpg" in output
    assert not fake_nucleus.requests_to("append")
    assert Item.objects.get(dataset=linked).nucleus_uploaded_at is None


def test_video_scenes_and_frame_scenes_are_appended_as_video_scenes(linked_scenes, fake_nucleus):
    SceneFactory(dataset=linked_scenes, reference_id="drive_1", video_url="https://videos.example.com/1.mp4")
    scene_create(
        dataset=linked_scenes,
        reference_id="drive_2",
        frame_rate=2.0,
        frames=[{"reference_id": f"frame_{n}", "image_url": f"https://images.example.com/f{n}.jpg"} for n in range(2)],
    )

    push(linked_scenes)

    assert fake_nucleus.requests_to("upload_video_scenes")
    scenes = on_nucleus(fake_nucleus, linked_scenes).scenes
    assert scenes["drive_1"]["video_url"] == "https://videos.example.com/1.mp4"
    assert [frame["reference_id"] for frame in scenes["drive_2"]["frames"]] == ["frame_0", "frame_1"]
    assert scenes["drive_2"]["frame_rate"] == 2
    assert not Scene.objects.filter(dataset=linked_scenes, nucleus_uploaded_at__isnull=True).exists()


def test_an_unlinked_dataset_is_refused(dataset, nucleus_settings):
    with pytest.raises(CommandError, match="not linked"):
        push(dataset)


def test_a_push_in_flight_when_the_dataset_is_relinked_records_nothing(linked, fake_nucleus, monkeypatch):
    from labeling import nucleus
    from labeling.models import Dataset
    from labeling.services.datasets import dataset_update

    item = ItemFactory(dataset=linked)
    other = fake_nucleus.create_dataset("other")
    real_append = nucleus.append

    def append_then_relink(remote, rows):
        answer = real_append(remote, rows)  # the old Nucleus dataset has the item now, the new one not
        dataset_update(dataset=Dataset.objects.get(pk=linked.pk), name=linked.name, nucleus_dataset_id=other, nucleus_push_items=False)
        return answer

    monkeypatch.setattr(nucleus, "append", append_then_relink)

    report = nucleus_items_push(dataset=linked)

    item.refresh_from_db()
    assert item.nucleus_uploaded_at is None
    assert (report.uploaded, report.failed) == (0, 1)
