"""datasets/{id}/scenes/: bulk create of scenes (a video, or frames that are items of their own),
all or nothing, and the list."""

import pytest

from labeling.models import MAX_FRAMES_PER_SCENE, Item, Scene, Task
from tests.factories import SceneFactory
from tests.labeling.api.support import errors_of, row_counts, url

pytestmark = pytest.mark.django_db


def frame(reference_id: str, **fields) -> dict:
    return {"reference_id": reference_id, "image_url": f"https://images.example.com/{reference_id}.jpg", **fields}


def scene(reference_id: str, frames: list[str] = (), **fields) -> dict:
    return {"reference_id": reference_id, "frame_rate": 10, "frames": [frame(name) for name in frames], **fields}


def post_scenes(client, dataset, rows):
    return client.post(url("scene-list", dataset_id=dataset.id), rows, format="json")


def where(response) -> list[tuple]:
    return [(error.get("index"), error["field"]) for error in errors_of(response)]


class TestCreate:
    def test_it_stores_a_scene_with_its_frames_in_order_and_one_queue_task(self, admin_client, scene_dataset):
        response = post_scenes(admin_client, scene_dataset, [scene("drive_1", ["d1_f0", "d1_f1", "d1_f2"], metadata={"city": "Oslo"})])
        assert (response.status_code, response.json()) == (201, {"created": 1})
        stored = Scene.objects.get(dataset=scene_dataset, reference_id="drive_1")
        assert (stored.frame_rate, stored.metadata) == (10.0, {"city": "Oslo"})
        assert list(stored.frames.order_by("frame_index").values_list("reference_id", "frame_index")) == [
            ("d1_f0", 0), ("d1_f1", 1), ("d1_f2", 2)
        ]
        assert list(Task.objects.values_list("scene__reference_id", "item_id")) == [("drive_1", None)]

    def test_it_stores_a_video_scene(self, admin_client, scene_dataset):
        response = post_scenes(admin_client, scene_dataset, [{"reference_id": "drive_1", "frame_rate": 30, "video_url": "https://videos.example.com/1.mp4"}])
        assert response.status_code == 201
        assert Scene.objects.get(reference_id="drive_1").video_url == "https://videos.example.com/1.mp4"

    def test_it_stores_a_scene_of_exactly_3000_frames(self, admin_client, scene_dataset):
        names = [f"f{n}" for n in range(MAX_FRAMES_PER_SCENE)]
        response = post_scenes(admin_client, scene_dataset, [scene("long", names)])
        assert response.status_code == 201
        assert Item.objects.filter(scene__reference_id="long").count() == 3000

    def test_it_refuses_a_scene_of_more_than_3000_frames(self, admin_client, scene_dataset):
        before = row_counts()
        response = post_scenes(admin_client, scene_dataset, [scene("short", ["s0"]), scene("long", [f"f{n}" for n in range(3001)])])
        assert response.status_code == 400
        assert errors_of(response) == [{"index": 1, "field": "frames", "message": "A scene holds at most 3000 frames; this one has 3001."}]
        assert row_counts() == before

    def test_it_refuses_a_body_that_is_not_a_list(self, admin_client, scene_dataset):
        response = post_scenes(admin_client, scene_dataset, scene("drive_1", ["f0"]))
        assert errors_of(response) == [{"field": "", "message": "Send a JSON list of scenes."}]
        assert not Scene.objects.exists()

    def test_an_images_dataset_takes_no_scenes(self, admin_client, dataset):
        response = post_scenes(admin_client, dataset, [scene("drive_1", ["f0"])])
        assert (response.status_code, where(response)) == (400, [(None, "reference_id")])
        assert not Scene.objects.exists()


class TestReferenceIds:
    def test_it_refuses_a_scene_reference_id_twice_in_the_batch(self, admin_client, scene_dataset):
        before = row_counts()
        response = post_scenes(admin_client, scene_dataset, [scene("drive_1", ["a"]), scene("drive_1", ["b"])])
        assert response.status_code == 400
        assert errors_of(response) == [
            {"index": 0, "field": "reference_id", "message": "'drive_1' appears more than once in this batch."},
            {"index": 1, "field": "reference_id", "message": "'drive_1' appears more than once in this batch."},
        ]
        assert row_counts() == before

    def test_it_refuses_a_scene_reference_id_already_stored(self, admin_client, scene_dataset):
        SceneFactory(dataset=scene_dataset, reference_id="drive_1")
        before = row_counts()
        response = post_scenes(admin_client, scene_dataset, [scene("drive_2", ["a"]), scene("drive_1", ["b"])])
        assert errors_of(response) == [{"index": 1, "field": "reference_id", "message": "'drive_1' is already used in this dataset."}]
        assert row_counts() == before

    def test_it_refuses_a_frame_named_like_a_scene_of_the_batch(self, admin_client, scene_dataset):
        before = row_counts()
        response = post_scenes(admin_client, scene_dataset, [scene("drive_1", ["f0"]), scene("drive_2", ["drive_1"])])
        assert response.status_code == 400
        assert where(response) == [(0, "reference_id"), (1, "frames[0].reference_id")]
        assert row_counts() == before

    def test_it_refuses_a_frame_named_like_a_stored_scene(self, admin_client, scene_dataset):
        SceneFactory(dataset=scene_dataset, reference_id="drive_1")
        before = row_counts()
        response = post_scenes(admin_client, scene_dataset, [scene("drive_2", ["f0", "drive_1"])])
        assert errors_of(response) == [
            {"index": 0, "field": "frames[1].reference_id", "message": "'drive_1' is already used in this dataset."}
        ]
        assert row_counts() == before

    def test_it_refuses_a_scene_named_like_a_stored_frame(self, admin_client, scene_dataset):
        post_scenes(admin_client, scene_dataset, [scene("drive_1", ["f0"])])
        before = row_counts()
        response = post_scenes(admin_client, scene_dataset, [scene("f0", ["f1"])])
        assert errors_of(response) == [{"index": 0, "field": "reference_id", "message": "'f0' is already used in this dataset."}]
        assert row_counts() == before

    def test_it_refuses_a_frame_reference_id_twice_in_one_scene(self, admin_client, scene_dataset):
        response = post_scenes(admin_client, scene_dataset, [scene("drive_1", ["f0", "f1", "f0"])])
        assert where(response) == [(0, "frames[0].reference_id"), (0, "frames[2].reference_id")]
        assert not Scene.objects.exists()


class TestBadRows:
    def test_it_refuses_a_scene_with_both_a_video_and_frames(self, admin_client, scene_dataset):
        response = post_scenes(admin_client, scene_dataset, [scene("drive_1", ["f0"], video_url="https://videos.example.com/1.mp4")])
        assert errors_of(response) == [
            {"index": 0, "field": "frames", "message": "A scene has either a video_url or a list of frames, not both or neither."}
        ]
        assert not Scene.objects.exists()

    def test_it_refuses_a_scene_with_neither_a_video_nor_frames(self, admin_client, scene_dataset):
        response = post_scenes(admin_client, scene_dataset, [scene("drive_1", [])])
        assert (response.status_code, where(response)) == (400, [(0, "frames")])

    def test_it_refuses_a_video_url_that_is_not_http(self, admin_client, scene_dataset):
        response = post_scenes(admin_client, scene_dataset, [{"reference_id": "drive_1", "video_url": "ftp://videos.example.com/1.mp4"}])
        assert errors_of(response) == [{"index": 0, "field": "video_url", "message": "Only http and https URLs are accepted."}]
        assert not Scene.objects.exists()

    def test_it_refuses_a_frame_whose_image_url_is_a_file(self, admin_client, scene_dataset):
        row = scene("drive_1", ["f0"])
        row["frames"].append({"reference_id": "f1", "image_url": "file:///etc/passwd"})
        before = row_counts()
        response = post_scenes(admin_client, scene_dataset, [row])
        assert response.status_code == 400
        assert {"index": 0, "field": "frames[1].image_url", "message": "Only http and https URLs are accepted."} in errors_of(response)
        assert row_counts() == before

    def test_it_refuses_nan_in_scene_metadata(self, admin_client, scene_dataset):
        body = '[{"reference_id": "drive_1", "video_url": "https://videos.example.com/1.mp4", "metadata": {"speed": NaN}}]'
        response = admin_client.post(url("scene-list", dataset_id=scene_dataset.id), body, content_type="application/json")
        assert (response.status_code, where(response)) == (400, [(0, "metadata")])
        assert "NaN or Infinity" in errors_of(response)[0]["message"]
        assert not Scene.objects.exists()

    def test_it_refuses_infinity_in_frame_metadata(self, admin_client, scene_dataset):
        body = '[{"reference_id": "drive_1", "frames": [{"reference_id": "f0", "image_url": "https://x.example.com/0.jpg", "metadata": {"t": Infinity}}]}]'
        response = admin_client.post(url("scene-list", dataset_id=scene_dataset.id), body, content_type="application/json")
        assert (response.status_code, where(response)) == (400, [(0, "frames[0].metadata")])
        assert not Item.objects.exists()

    def test_it_refuses_an_unknown_field_of_a_scene(self, admin_client, scene_dataset):
        response = post_scenes(admin_client, scene_dataset, [scene("drive_1", ["f0"], fps=10)])
        assert errors_of(response) == [
            {"index": 0, "field": "fps", "message": "Unknown field; a scene has frame_rate, frames, metadata, reference_id, video_url."}
        ]
        assert not Scene.objects.exists()

    def test_it_refuses_an_unknown_field_of_a_frame(self, admin_client, scene_dataset):
        row = scene("drive_1", ["f0"])
        row["frames"][0]["timestamp"] = 0.1
        response = post_scenes(admin_client, scene_dataset, [row])
        assert (response.status_code, where(response)) == (400, [(0, "frames[0].timestamp")])
        assert not Scene.objects.exists()

    def test_it_refuses_an_image_file_named_in_a_frame(self, admin_client, scene_dataset):
        row = scene("drive_1", ["f0"])
        row["frames"][0] = {"reference_id": "f0", "image_file": "/etc/passwd"}
        before = row_counts()
        response = post_scenes(admin_client, scene_dataset, [row])
        assert (response.status_code, where(response)) == (400, [(0, "frames[0].image_file")])
        assert row_counts() == before

    @pytest.mark.parametrize("frame_rate", [0, -5])
    def test_it_refuses_a_frame_rate_that_is_not_positive(self, admin_client, scene_dataset, frame_rate):
        response = post_scenes(admin_client, scene_dataset, [scene("drive_1", ["f0"], frame_rate=frame_rate)])
        assert (response.status_code, where(response)) == (400, [(0, "frame_rate")])
        assert not Scene.objects.exists()


class TestList:
    def test_it_lists_scenes_with_their_frame_count_and_queue_status(self, labeler_client, admin_client, scene_dataset):
        post_scenes(admin_client, scene_dataset, [scene("drive_1", ["f0", "f1"], metadata={"city": "Oslo"})])
        response = labeler_client.get(url("scene-list", dataset_id=scene_dataset.id))
        assert response.status_code == 200
        (listed,) = response.json()["results"]
        assert {key: value for key, value in listed.items() if key not in {"id", "created_at"}} == {
            "reference_id": "drive_1", "frame_rate": 10.0, "video_url": "", "metadata": {"city": "Oslo"},
            "frame_count": 2, "status": "open",
        }

    def test_next_links_walk_every_scene_once(self, labeler_client, admin_client, scene_dataset):
        post_scenes(admin_client, scene_dataset, [scene(f"drive_{n}", [f"d{n}_f0", f"d{n}_f1"]) for n in range(5)])
        seen, link = [], url("scene-list", dataset_id=scene_dataset.id) + "?limit=2"
        while link:
            body = labeler_client.get(link).json()
            seen += [row["reference_id"] for row in body["results"]]
            link = body["next"]
        assert seen == [f"drive_{n}" for n in range(5)]
