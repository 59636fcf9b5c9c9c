"""`manage.py pull_nucleus_items`: the items of the linked Nucleus dataset, imported through the import service."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from labeling.models import Item, Scene, Task
from labeling.services import nucleus_items
from tests.factories import ItemFactory

pytestmark = pytest.mark.django_db


def pull(dataset, *args) -> str:
    out = StringIO()
    call_command("pull_nucleus_items", str(dataset.id), *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def remote_items(count: int, start: int = 0) -> list[dict]:
    return [
        {"reference_id": f"nu_{n}", "image_url": f"https://images.example.com/nu_{n}.jpg", "metadata": {"n": n}}
        for n in range(start, start + count)
    ]


def test_it_imports_reference_ids_image_urls_and_metadata_as_queued_items(linked, fake_nucleus):
    fake_nucleus.add_items(linked.nucleus_dataset_id, remote_items(3))

    output = pull(linked)

    items = list(Item.objects.filter(dataset=linked).order_by("reference_id"))
    assert [(i.reference_id, i.image_url, i.metadata) for i in items] == [
        (f"nu_{n}", f"https://images.example.com/nu_{n}.jpg", {"n": n}) for n in range(3)
    ]
    assert Task.objects.filter(dataset=linked).count() == 3
    assert all(item.nucleus_uploaded_at is not None for item in items)
    assert "Imported 3 of 3 on Nucleus; 0 already here" in output


def test_it_reads_the_items_page_by_page(linked, fake_nucleus, monkeypatch):
    monkeypatch.setattr(nucleus_items, "PULL_PAGE_SIZE", 2)
    fake_nucleus.add_items(linked.nucleus_dataset_id, remote_items(5))

    pull(linked)

    assert len(fake_nucleus.requests_to("itemsPage")) == 3
    assert Item.objects.filter(dataset=linked).count() == 5


def test_it_skips_reference_ids_already_here_and_counts_them(linked, fake_nucleus):
    ItemFactory(dataset=linked, reference_id="nu_1", image_url="https://elsewhere.example.com/1.jpg")
    fake_nucleus.add_items(linked.nucleus_dataset_id, remote_items(3))

    output = pull(linked)

    assert "Imported 2 of 3 on Nucleus; 1 already here (skipped)" in output
    assert Item.objects.get(dataset=linked, reference_id="nu_1").image_url == "https://elsewhere.example.com/1.jpg"


def test_a_second_pull_imports_nothing(linked, fake_nucleus):
    fake_nucleus.add_items(linked.nucleus_dataset_id, remote_items(2))
    pull(linked)

    assert "Imported 0 of 2 on Nucleus; 2 already here" in pull(linked)


def test_a_dry_run_lists_what_would_be_imported_and_stores_nothing(linked, fake_nucleus):
    fake_nucleus.add_items(linked.nucleus_dataset_id, remote_items(2))

    output = pull(linked, "--dry-run")

    assert "nu_0\thttps://images.example.com/nu_0.jpg" in output
    assert "Would import 2 of 2" in output
    assert not Item.objects.filter(dataset=linked).exists()


def test_a_batch_with_a_bad_row_is_refused_whole_and_the_others_are_stored(linked, fake_nucleus, monkeypatch):
    monkeypatch.setattr(nucleus_items, "PULL_BATCH_SIZE", 2)
    rows = remote_items(4)
    rows[3]["image_url"] = "s3://bucket/nu_3.jpg"  # Nucleus takes it; this app shows http(s) images only
    fake_nucleus.add_items(linked.nucleus_dataset_id, rows)

    with pytest.raises(CommandError) as refused:
        pull(linked)

    assert "row 3, image_url: Only http and https URLs are accepted." in str(refused.value)
    assert sorted(Item.objects.filter(dataset=linked).values_list("reference_id", flat=True)) == ["nu_0", "nu_1"]


def test_a_scene_dataset_gets_the_video_scenes_and_is_told_which_frame_scenes_it_cannot_pull(linked_scenes, fake_nucleus):
    fake_nucleus.add_scenes(
        linked_scenes.nucleus_dataset_id,
        [
            {"reference_id": "drive_1", "video_url": "https://videos.example.com/drive_1.mp4", "metadata": {"city": "Oslo"}},
            {"reference_id": "drive_2", "frames": [{"reference_id": "f0", "image_url": "https://images.example.com/f0.jpg"}]},
        ],
    )

    with pytest.raises(CommandError) as refused:
        pull(linked_scenes)

    assert "1 scenes are made of frames, which the SDK's scene export does not give: drive_2" in str(refused.value)
    scene = Scene.objects.get(dataset=linked_scenes)
    assert (scene.reference_id, scene.video_url, scene.metadata) == ("drive_1", "https://videos.example.com/drive_1.mp4", {"city": "Oslo"})
    assert Task.objects.filter(scene=scene).exists()


def test_a_dataset_that_is_not_linked_is_refused(dataset, nucleus_settings):
    with pytest.raises(CommandError, match="not linked to a Nucleus dataset"):
        pull(dataset)


def test_without_an_api_key_it_says_so(linked, settings):
    settings.NUCLEUS_API_KEY = ""

    with pytest.raises(CommandError, match="NUCLEUS_API_KEY is not set"):
        pull(linked)


def test_nucleus_failing_is_a_clear_error(linked, fake_nucleus):
    fake_nucleus.add_items(linked.nucleus_dataset_id, remote_items(2))
    fake_nucleus.fail_next(500, route="itemsPage")

    with pytest.raises(CommandError, match="Nucleus: Nucleus answered HTTP 500"):
        pull(linked)
