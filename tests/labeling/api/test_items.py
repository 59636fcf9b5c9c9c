"""datasets/{id}/items/: bulk create from JSON, files and uploads (all or nothing), and the list
with its filters and keyset pagination."""

import json
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from labeling.models import Item, Task
from taxonomies.services import taxonomy_create
from tests.factories import UserFactory, png_upload
from tests.labeling.api.support import answer, errors_of, item_with_task, row_counts, url

pytestmark = pytest.mark.django_db


def row(reference_id: str, **fields) -> dict:
    return {"reference_id": reference_id, "image_url": f"https://images.example.com/{reference_id}.jpg", **fields}


def post_rows(client, dataset, rows):
    return client.post(url("item-list", dataset_id=dataset.id), rows, format="json")


def post_file(client, dataset, name: str, content: bytes, **fields):
    return client.post(url("item-list", dataset_id=dataset.id), {"file": SimpleUploadedFile(name, content), **fields}, format="multipart")


def stored_files(settings) -> list[Path]:
    root = Path(settings.MEDIA_ROOT)
    return [path for path in root.rglob("*") if path.is_file()] if root.exists() else []


def where(response) -> list[tuple]:
    """Each error as (index, field)."""
    return [(error.get("index"), error["field"]) for error in errors_of(response)]


class TestCreateFromJson:
    def test_it_stores_every_row_with_its_queue_task(self, admin_client, dataset):
        response = post_rows(admin_client, dataset, [row("image_1", metadata={"camera": "front", "score": 0.5}), row("image_2")])
        assert (response.status_code, response.json()) == (201, {"created": 2})
        item = Item.objects.get(dataset=dataset, reference_id="image_1")
        assert (item.image_url, item.metadata) == ("https://images.example.com/image_1.jpg", {"camera": "front", "score": 0.5})
        assert Task.objects.filter(dataset=dataset, state="open").count() == 2

    def test_it_refuses_a_body_that_is_not_a_list(self, admin_client, dataset):
        response = post_rows(admin_client, dataset, row("image_1"))
        assert (response.status_code, errors_of(response)) == (400, [{"field": "", "message": "Send a JSON list of rows."}])
        assert not Item.objects.exists()

    def test_it_refuses_a_reference_id_twice_in_the_batch_naming_both_rows(self, admin_client, dataset):
        before = row_counts()
        response = post_rows(admin_client, dataset, [row("image_1"), row("image_2"), row("image_1")])
        assert response.status_code == 400
        assert errors_of(response) == [
            {"index": 0, "field": "reference_id", "message": "'image_1' appears more than once in this batch."},
            {"index": 2, "field": "reference_id", "message": "'image_1' appears more than once in this batch."},
        ]
        assert row_counts() == before

    def test_it_refuses_a_reference_id_already_stored(self, admin_client, dataset):
        item_with_task(dataset, "image_1")
        before = row_counts()
        response = post_rows(admin_client, dataset, [row("image_0"), row("image_1")])
        assert response.status_code == 400
        assert errors_of(response) == [{"index": 1, "field": "reference_id", "message": "'image_1' is already used in this dataset."}]
        assert row_counts() == before

    def test_a_reference_id_of_another_dataset_is_free_here(self, admin_client, dataset, other_dataset):
        item_with_task(other_dataset, "image_1")
        assert post_rows(admin_client, dataset, [row("image_1")]).status_code == 201

    @pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
    def test_it_refuses_non_finite_numbers_in_metadata(self, admin_client, dataset, value):
        before = row_counts()
        body = f'[{{"reference_id": "image_1", "image_url": "https://images.example.com/1.jpg", "metadata": {{"x": {value}}}}}]'
        response = admin_client.post(url("item-list", dataset_id=dataset.id), body, content_type="application/json")
        assert response.status_code == 400
        assert errors_of(response) == [
            {"index": 0, "field": "metadata", "message": "metadata contains NaN or Infinity (at metadata['x']); use null or a finite number."}
        ]
        assert row_counts() == before

    def test_it_names_where_a_nested_nan_is(self, admin_client, dataset):
        body = '[{"reference_id": "image_1", "image_url": "https://images.example.com/1.jpg", "metadata": {"box": [1, {"w": NaN}]}}]'
        response = admin_client.post(url("item-list", dataset_id=dataset.id), body, content_type="application/json")
        assert "(at metadata['box'][1]['w'])" in errors_of(response)[0]["message"]
        assert not Item.objects.exists()

    def test_it_refuses_metadata_that_is_not_an_object(self, admin_client, dataset):
        response = post_rows(admin_client, dataset, [row("image_1", metadata=["front"])])
        assert (response.status_code, where(response)) == (400, [(0, "metadata")])
        assert not Item.objects.exists()

    @pytest.mark.parametrize("image_url", ["ftp://images.example.com/1.jpg", "file:///etc/passwd"])
    def test_it_refuses_an_image_url_that_is_not_http(self, admin_client, dataset, image_url):
        before = row_counts()
        response = post_rows(admin_client, dataset, [{"reference_id": "image_1", "image_url": image_url}])
        assert response.status_code == 400
        assert {"index": 0, "field": "image_url", "message": "Only http and https URLs are accepted."} in errors_of(response)
        assert row_counts() == before

    def test_it_refuses_a_row_without_an_image(self, admin_client, dataset):
        response = post_rows(admin_client, dataset, [{"reference_id": "image_1"}])
        assert errors_of(response) == [{"index": 0, "field": "image_url", "message": "An item needs an uploaded image or an image_url."}]
        assert not Item.objects.exists()

    @pytest.mark.parametrize("reference_id", ["", "   "])
    def test_it_refuses_an_empty_reference_id(self, admin_client, dataset, reference_id):
        response = post_rows(admin_client, dataset, [{"reference_id": reference_id, "image_url": "https://images.example.com/1.jpg"}])
        assert (response.status_code, where(response)) == (400, [(0, "reference_id")])
        assert not Item.objects.exists()

    def test_it_refuses_an_unknown_field_and_names_it(self, admin_client, dataset):
        before = row_counts()
        response = post_rows(admin_client, dataset, [row("image_1"), row("image_2", metdata={"camera": "front"})])
        assert response.status_code == 400
        assert errors_of(response) == [
            {"index": 1, "field": "metdata", "message": "Unknown field; a row has image_url, metadata, reference_id."}
        ]
        assert row_counts() == before

    def test_it_refuses_an_image_file_named_in_a_json_row(self, admin_client, dataset):
        before = row_counts()
        response = post_rows(admin_client, dataset, [row("image_1"), {"reference_id": "image_2", "image_file": "/etc/passwd"}])
        assert response.status_code == 400
        assert where(response) == [(1, "image_file")]
        assert row_counts() == before

    def test_a_batch_of_100_with_3_bad_rows_names_exactly_those_rows_and_stores_none(self, admin_client, dataset):
        rows = [row(f"image_{n}") for n in range(100)]
        rows[3]["image_url"] = "ftp://images.example.com/3.jpg"
        rows[50]["metadata"] = "not an object"
        rows[98]["colour"] = "red"
        before = row_counts()
        response = post_rows(admin_client, dataset, rows)
        assert response.status_code == 400
        assert [error["index"] for error in errors_of(response)] == [3, 50, 98]
        assert row_counts() == before

    def test_a_scene_dataset_takes_no_items(self, admin_client, scene_dataset):
        response = post_rows(admin_client, scene_dataset, [row("image_1")])
        assert response.status_code == 400
        assert [error["field"] for error in errors_of(response)] == ["reference_id"]
        assert not Item.objects.exists()


class TestCreateFromFile:
    def test_it_reads_a_json_file(self, admin_client, dataset):
        content = json.dumps([row("image_1", metadata={"camera": "front"}), row("image_2")]).encode()
        response = post_file(admin_client, dataset, "rows.json", content)
        assert (response.status_code, response.json()) == (201, {"created": 2})
        assert Item.objects.get(reference_id="image_1").metadata == {"camera": "front"}

    def test_it_reads_a_jsonl_file(self, admin_client, dataset):
        content = b"\n".join(json.dumps(row(f"image_{n}")).encode() for n in range(3)) + b"\n"
        response = post_file(admin_client, dataset, "rows.jsonl", content)
        assert (response.status_code, response.json()) == (201, {"created": 3})
        assert sorted(Item.objects.values_list("reference_id", flat=True)) == ["image_0", "image_1", "image_2"]

    def test_it_reads_a_csv_file_whose_extra_columns_and_metadata_column_become_metadata(self, admin_client, dataset):
        content = (
            b"reference_id,image_url,camera,metadata\n"
            b'image_1,https://images.example.com/1.jpg,front,"{""score"": 0.5}"\n'
            b"image_2,https://images.example.com/2.jpg,,\n"
        )
        response = post_file(admin_client, dataset, "rows.csv", content)
        assert (response.status_code, response.json()) == (201, {"created": 2})
        assert dict(Item.objects.values_list("reference_id", "metadata")) == {
            "image_1": {"camera": "front", "score": 0.5},
            "image_2": {},
        }

    def test_a_format_field_overrides_the_file_name(self, admin_client, dataset):
        content = json.dumps(row("image_1")).encode()
        response = post_file(admin_client, dataset, "rows.txt", content, format="jsonl")
        assert response.status_code == 201

    def test_it_refuses_a_file_whose_format_it_cannot_tell(self, admin_client, dataset):
        response = post_file(admin_client, dataset, "rows.txt", b"{}")
        assert (response.status_code, where(response)) == (400, [(None, "format")])

    def test_it_names_the_line_of_a_jsonl_file_that_is_not_json(self, admin_client, dataset):
        content = json.dumps(row("image_1")).encode() + b"\n{broken\n" + json.dumps(row("image_3")).encode() + b"\n"
        before = row_counts()
        response = post_file(admin_client, dataset, "rows.jsonl", content)
        assert response.status_code == 400
        (error,) = errors_of(response)
        assert (error["index"], error["field"]) == (1, "")
        assert error["message"].startswith("Not valid JSON: Expecting property name")
        assert row_counts() == before

    def test_it_names_the_line_of_a_jsonl_file_whose_row_is_bad(self, admin_client, dataset):
        content = b"\n".join(json.dumps(r).encode() for r in [row("image_0"), row("image_1"), row("image_2", image_url="ftp://x/2.jpg")])
        response = post_file(admin_client, dataset, "rows.jsonl", content)
        assert {"index": 2, "field": "image_url", "message": "Only http and https URLs are accepted."} in errors_of(response)
        assert not Item.objects.exists()

    def test_it_refuses_a_json_file_that_is_not_a_list(self, admin_client, dataset):
        response = post_file(admin_client, dataset, "rows.json", json.dumps(row("image_1")).encode())
        assert errors_of(response) == [{"field": "file", "message": "A JSON file holds a list of rows."}]
        assert not Item.objects.exists()

    def test_it_refuses_a_csv_without_a_reference_id_column(self, admin_client, dataset):
        response = post_file(admin_client, dataset, "rows.csv", b"name,image_url\na,https://images.example.com/a.jpg\n")
        assert errors_of(response) == [{"field": "file", "message": "The CSV needs a header row with a reference_id column."}]

    def test_it_names_the_csv_row_whose_metadata_column_is_not_json(self, admin_client, dataset):
        content = b"reference_id,image_url,metadata\nimage_0,https://x.example.com/0.jpg,{}\nimage_1,https://x.example.com/1.jpg,{oops\n"
        response = post_file(admin_client, dataset, "rows.csv", content)
        assert (response.status_code, where(response)) == (400, [(1, "metadata")])
        assert not Item.objects.exists()

    def test_it_refuses_nan_in_the_metadata_column_of_a_csv(self, admin_client, dataset):
        content = b'reference_id,image_url,metadata\nimage_0,https://x.example.com/0.jpg,"{""x"": NaN}"\n'
        response = post_file(admin_client, dataset, "rows.csv", content)
        assert (response.status_code, where(response)) == (400, [(0, "metadata")])
        assert not Item.objects.exists()

    def test_it_refuses_a_file_that_is_not_utf8(self, admin_client, dataset):
        response = post_file(admin_client, dataset, "rows.csv", "reference_id\nçà\n".encode("latin-1"))
        assert (response.status_code, where(response)) == (400, [(None, "file")])

    def test_it_refuses_an_image_file_named_in_a_json_file(self, admin_client, dataset):
        content = json.dumps([{"reference_id": "image_1", "image_file": "photo.png"}]).encode()
        response = post_file(admin_client, dataset, "rows.json", content)
        assert (response.status_code, where(response)) == (400, [(0, "image_file")])
        assert not Item.objects.exists()


class TestUploadImages:
    def post_images(self, client, dataset, images, **fields):
        return client.post(url("item-list", dataset_id=dataset.id), {"images": images, **fields}, format="multipart")

    def test_each_image_becomes_an_item_named_after_its_file(self, admin_client, dataset, settings):
        response = self.post_images(admin_client, dataset, [png_upload("shirt_1.png", (30, 20)), png_upload("shirt_2.png")])
        assert (response.status_code, response.json()) == (201, {"created": 2})
        item = Item.objects.get(reference_id="shirt_1")
        # Its size from the header; it waits for the check of its pixels (tests/labeling/test_image_verification.py).
        assert (item.width, item.height, item.image_check) == (30, 20, "pending")
        with Image.open(item.image.path) as stored:
            assert stored.format == "PNG"

    def test_the_listed_image_url_of_an_upload_is_served_from_media(self, admin_client, dataset):
        self.post_images(admin_client, dataset, [png_upload("shirt_1.png")])
        (listed,) = admin_client.get(url("item-list", dataset_id=dataset.id)).json()["results"]
        assert listed["image_url"].startswith(f"/media/items/{dataset.id}/") and "shirt" not in listed["image_url"]

    def test_reference_ids_name_the_images_in_order(self, admin_client, dataset):
        response = self.post_images(admin_client, dataset, [png_upload("a.png"), png_upload("b.png")], reference_ids=["front", "back"])
        assert response.status_code == 201
        assert sorted(Item.objects.values_list("reference_id", flat=True)) == ["back", "front"]

    def test_it_refuses_as_many_reference_ids_as_there_are_not_images(self, admin_client, dataset, settings):
        before = row_counts()
        response = self.post_images(admin_client, dataset, [png_upload("a.png"), png_upload("b.png")], reference_ids=["front"])
        assert response.status_code == 400
        assert errors_of(response) == [{"field": "reference_ids", "message": "1 reference_ids for 2 images."}]
        assert (row_counts(), stored_files(settings)) == (before, [])

    @pytest.mark.parametrize(
        "content",
        [
            b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>",
            b"<!DOCTYPE html><html><script>alert(1)</script></html>",
        ],
        ids=["svg", "html"],
    )
    def test_it_refuses_a_document_disguised_as_a_png_and_stores_nothing(self, admin_client, dataset, settings, content):
        disguised = SimpleUploadedFile("cat.png", content, content_type="image/png")
        before = row_counts()
        response = self.post_images(admin_client, dataset, [png_upload("dog.png"), disguised])
        assert response.status_code == 400
        (error,) = errors_of(response)
        assert (error["index"], error["field"]) == (1, "image_file")
        assert error["message"].startswith("The file is not a readable JPEG, PNG or WebP image")
        assert (row_counts(), stored_files(settings)) == (before, [])

    def test_it_refuses_an_upload_whose_name_is_already_a_reference_id(self, admin_client, dataset, settings):
        item_with_task(dataset, "dog")
        before = row_counts()
        response = self.post_images(admin_client, dataset, [png_upload("dog.png")])
        assert errors_of(response) == [{"index": 0, "field": "reference_id", "message": "'dog' is already used in this dataset."}]
        assert (row_counts(), stored_files(settings)) == (before, [])

    def test_it_refuses_an_image_over_the_pixel_cap(self, admin_client, dataset, settings):
        settings.MAX_IMAGE_PIXELS = 100
        response = self.post_images(admin_client, dataset, [png_upload("big.png", (20, 20))])
        assert errors_of(response) == [
            {"index": 0, "field": "image_file", "message": "The image has 400 pixels (20x20); the limit is 100."}
        ]
        assert (Item.objects.count(), stored_files(settings)) == (0, [])

    def test_it_refuses_a_file_of_rows_and_images_together(self, admin_client, dataset, settings):
        content = json.dumps([row("image_1")]).encode()
        response = admin_client.post(
            url("item-list", dataset_id=dataset.id),
            {"file": SimpleUploadedFile("rows.json", content), "images": [png_upload("dog.png")]}, format="multipart",
        )
        assert errors_of(response) == [{"field": "images", "message": "Send either a file of rows or images, not both."}]
        assert (Item.objects.count(), stored_files(settings)) == (0, [])

    def test_it_refuses_a_request_with_neither_rows_file_nor_images(self, admin_client, dataset):
        response = admin_client.post(url("item-list", dataset_id=dataset.id), {"note": "hello"}, format="multipart")
        assert errors_of(response) == [{"field": "", "message": "Send a JSON list, a file, or images."}]


class TestList:
    def list(self, client, dataset, query: str = "") -> list[str]:
        response = client.get(url("item-list", dataset_id=dataset.id) + query)
        assert response.status_code == 200
        return [item["reference_id"] for item in response.json()["results"]]

    def test_it_lists_items_in_nucleus_vocabulary(self, labeler_client, dataset):
        item = item_with_task(dataset, "image_1", metadata={"camera": "front"})
        response = labeler_client.get(url("item-list", dataset_id=dataset.id))
        (listed,) = response.json()["results"]
        assert listed == {
            "id": item.id, "reference_id": "image_1", "image_url": "https://images.example.com/image_1.jpg",
            "width": None, "height": None, "metadata": {"camera": "front"}, "status": "open",
            "image_check": "ok", "image_error": "", "created_at": listed["created_at"],
        }
        assert response.json()["next"] is None

    def test_it_filters_by_queue_status(self, labeler_client, dataset, items):
        Task.objects.filter(item=items[1]).update(state=Task.State.DONE)
        assert self.list(labeler_client, dataset, "?status=done") == ["image_2"]
        assert self.list(labeler_client, dataset, "?status=open") == ["image_1", "image_3"]

    def test_it_filters_by_taxonomy(self, labeler_client, dataset, items, clothing_type, attributes, labeler):
        answer(target=items[0], taxonomy=clothing_type, names=["shirt"], annotator=labeler)
        answer(target=items[1], taxonomy=attributes, names=["logo"], annotator=labeler)
        assert self.list(labeler_client, dataset, "?taxonomy=attributes") == ["image_2"]

    def test_it_filters_by_label_single_or_multi(self, labeler_client, dataset, items, clothing_type, attributes, labeler):
        answer(target=items[0], taxonomy=clothing_type, names=["shirt"], annotator=labeler)
        answer(target=items[1], taxonomy=attributes, names=["striped", "logo"], annotator=labeler)
        answer(target=items[2], taxonomy=clothing_type, names=["pants"], annotator=labeler)
        assert self.list(labeler_client, dataset, "?label=shirt") == ["image_1"]
        assert self.list(labeler_client, dataset, "?label=logo") == ["image_2"]

    def test_it_filters_by_label_within_a_taxonomy(self, labeler_client, dataset, items, clothing_type, labeler):
        fit = taxonomy_create(dataset=dataset, taxonomy_name="fit", labels=["shirt", "loose"])
        answer(target=items[0], taxonomy=clothing_type, names=["shirt"], annotator=labeler)
        answer(target=items[1], taxonomy=fit, names=["shirt"], annotator=labeler)
        assert self.list(labeler_client, dataset, "?taxonomy=fit&label=shirt") == ["image_2"]

    def test_it_filters_by_annotator(self, labeler_client, dataset, items, clothing_type, labeler):
        answer(target=items[0], taxonomy=clothing_type, names=["shirt"], annotator=labeler)
        answer(target=items[2], taxonomy=clothing_type, names=["shirt"], annotator=UserFactory(username="dana"))
        assert self.list(labeler_client, dataset, "?annotator=dana") == ["image_3"]

    def test_it_filters_by_reference_id(self, labeler_client, dataset, items):
        assert self.list(labeler_client, dataset, "?reference_id=image_2") == ["image_2"]

    def test_it_refuses_an_unknown_status(self, labeler_client, dataset):
        response = labeler_client.get(url("item-list", dataset_id=dataset.id) + "?status=finished")
        assert errors_of(response) == [{"field": "status", "message": '"finished" is not a valid choice.'}]

    def test_it_leaves_out_the_frames_of_scenes(self, admin_client, scene_dataset):
        admin_client.post(
            url("scene-list", dataset_id=scene_dataset.id),
            [{"reference_id": "scene_1", "frames": [row("frame_1")]}], format="json",
        )
        assert self.list(admin_client, scene_dataset) == []


class TestPagination:
    def test_next_links_walk_every_item_once_in_order(self, labeler_client, dataset):
        expected = [item_with_task(dataset, f"image_{n}").reference_id for n in range(7)]
        seen, link, pages = [], url("item-list", dataset_id=dataset.id) + "?limit=2", 0
        while link:
            response = labeler_client.get(link)
            assert response.status_code == 200
            body = response.json()
            assert len(body["results"]) <= 2
            seen += [item["reference_id"] for item in body["results"]]
            link, pages = body["next"], pages + 1
        assert (seen, pages) == (expected, 4)

    def test_next_links_keep_the_filters(self, labeler_client, dataset):
        for n in range(7):
            item_with_task(dataset, f"image_{n}")
        Task.objects.filter(item__reference_id__in=["image_0", "image_3"]).update(state=Task.State.DONE)
        first = labeler_client.get(url("item-list", dataset_id=dataset.id) + "?status=open&limit=2").json()
        second = labeler_client.get(first["next"]).json()
        third = labeler_client.get(second["next"]).json()
        listed = [item["reference_id"] for page in (first, second, third) for item in page["results"]]
        assert (listed, third["next"]) == (["image_1", "image_2", "image_4", "image_5", "image_6"], None)

    def test_a_full_last_page_has_no_next_link(self, labeler_client, dataset, items):
        body = labeler_client.get(url("item-list", dataset_id=dataset.id) + "?limit=3").json()
        assert (len(body["results"]), body["next"]) == (3, None)

    @pytest.mark.parametrize(
        ("query", "field"),
        [("?after=abc", "after"), ("?after=-1", "after"), ("?limit=0", "limit"), ("?limit=1001", "limit"), ("?limit=two", "limit")],
    )
    def test_it_refuses_a_bad_after_or_limit(self, labeler_client, dataset, items, query, field):
        response = labeler_client.get(url("item-list", dataset_id=dataset.id) + query)
        assert (response.status_code, [error["field"] for error in errors_of(response)]) == (400, [field])
