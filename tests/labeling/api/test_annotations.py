"""datasets/{id}/annotations/: create or update finished annotations in Nucleus's vocabulary (all
or nothing), list with filters; and datasets/{id}/export/."""

import json

import pytest

from labeling.models import CategoryAnnotation, Task
from taxonomies.services import taxonomy_create
from tests.factories import UserFactory
from tests.labeling.api.support import answer, errors_of, item_with_task, row_counts, url

pytestmark = pytest.mark.django_db


def post(client, dataset, body):
    return client.post(url("annotation-list", dataset_id=dataset.id), body, format="json")


def post_raw(client, dataset, text: str):
    return client.post(url("annotation-list", dataset_id=dataset.id), text, content_type="application/json")


def where(response) -> list[tuple]:
    return [(error.get("index"), error["field"]) for error in errors_of(response)]


class TestCreate:
    """As scripts bring labels in: with an admin's token (who a labeler's token may write for is
    tests/labeling/api/test_write_ownership.py's matrix)."""

    def test_it_stores_one_finished_annotation_and_answers_in_nucleus_vocabulary(self, admin_client, dataset, items, clothing_type):
        response = post(admin_client, dataset, {"reference_id": "image_1", "taxonomy_name": "clothing_type", "label": "shirt", "metadata": {"source": "script"}})
        assert response.status_code == 200
        (body,) = response.json()
        assert {key: body[key] for key in ("reference_id", "taxonomy_name", "label", "labels", "metadata", "status", "annotator", "version", "sync_state")} == {
            "reference_id": "image_1", "taxonomy_name": "clothing_type", "label": "shirt", "labels": None,
            "metadata": {"source": "script"}, "status": "finished", "annotator": "alice", "version": 1, "sync_state": "pending",
        }
        assert CategoryAnnotation.objects.get(item=items[0]).label.name == "shirt"

    def test_it_stores_a_list_of_annotations_with_labels_for_a_multi_label_taxonomy(self, admin_client, dataset, items, clothing_type, attributes):
        response = post(admin_client, dataset, [
            {"reference_id": "image_1", "taxonomy_name": "clothing_type", "label": "shirt"},
            {"reference_id": "image_1", "taxonomy_name": "attributes", "labels": ["logo", "striped"]},
        ])
        assert response.status_code == 200
        assert [(row["taxonomy_name"], row["label"], row["labels"]) for row in response.json()] == [
            ("clothing_type", "shirt", None), ("attributes", None, ["striped", "logo"])
        ]

    def test_an_empty_labels_list_means_none_of_the_labels_apply(self, admin_client, dataset, items, attributes):
        response = post(admin_client, dataset, {"reference_id": "image_1", "taxonomy_name": "attributes", "labels": []})
        assert (response.status_code, response.json()[0]["labels"]) == (200, [])

    def test_changing_a_finished_annotation_bumps_its_version(self, admin_client, dataset, items, clothing_type):
        post(admin_client, dataset, {"reference_id": "image_1", "taxonomy_name": "clothing_type", "label": "shirt"})
        response = post(admin_client, dataset, {"reference_id": "image_1", "taxonomy_name": "clothing_type", "label": "dress"})
        assert [(row["label"], row["version"]) for row in response.json()] == [("dress", 2)]
        assert CategoryAnnotation.objects.count() == 1

    def test_sending_the_same_answer_again_changes_nothing(self, admin_client, dataset, items, clothing_type):
        body = {"reference_id": "image_1", "taxonomy_name": "clothing_type", "label": "shirt"}
        post(admin_client, dataset, body)
        assert post(admin_client, dataset, body).json()[0]["version"] == 1

    def test_answering_every_required_taxonomy_closes_the_items_queue_task(self, admin_client, dataset, items, clothing_type):
        post(admin_client, dataset, {"reference_id": "image_1", "taxonomy_name": "clothing_type", "label": "shirt"})
        assert Task.objects.get(item=items[0]).state == Task.State.DONE

    def test_a_required_taxonomy_left_unanswered_keeps_the_task_open(self, admin_client, dataset, items, clothing_type, attributes):
        post(admin_client, dataset, {"reference_id": "image_1", "taxonomy_name": "clothing_type", "label": "shirt"})
        assert Task.objects.get(item=items[0]).state == Task.State.OPEN

    def test_a_scene_is_annotated_by_its_reference_id(self, admin_client, scene_dataset):
        taxonomy_create(dataset=scene_dataset, taxonomy_name="weather", labels=["sun", "rain"], applies_to="scenes")
        admin_client.post(url("scene-list", dataset_id=scene_dataset.id), [{"reference_id": "drive_1", "video_url": "https://v.example.com/1.mp4"}], format="json")
        response = post(admin_client, scene_dataset, {"reference_id": "drive_1", "taxonomy_name": "weather", "label": "rain"})
        assert (response.status_code, response.json()[0]["reference_id"], response.json()[0]["label"]) == (200, "drive_1", "rain")


@pytest.mark.usefixtures("items", "clothing_type", "attributes")
class TestRefused:
    """Every bad row is named by index and field, and a batch with one stores none."""

    GOOD = {"reference_id": "image_1", "taxonomy_name": "clothing_type", "label": "shirt"}

    def refused(self, client, dataset, bad: dict, *, index: int = 1):
        """Post a good row then `bad`; assert 400 and that nothing was stored; return the errors."""
        before = row_counts()
        response = post(client, dataset, [self.GOOD, bad])
        assert response.status_code == 400
        assert row_counts() == before
        assert all(error["index"] == index for error in errors_of(response))
        return errors_of(response)

    def test_it_refuses_an_unknown_reference_id(self, labeler_client, dataset):
        errors = self.refused(labeler_client, dataset, {**self.GOOD, "reference_id": "image_9"})
        assert errors == [{"index": 1, "field": "reference_id", "message": "No item or scene has reference_id 'image_9'."}]

    def test_it_refuses_an_unknown_taxonomy(self, labeler_client, dataset):
        errors = self.refused(labeler_client, dataset, {**self.GOOD, "reference_id": "image_2", "taxonomy_name": "colour"})
        assert errors == [
            {"index": 1, "field": "taxonomy_name", "message": "Unknown taxonomy “colour” (this dataset has: attributes, clothing_type)."}
        ]

    def test_it_refuses_an_unknown_label(self, labeler_client, dataset):
        errors = self.refused(labeler_client, dataset, {**self.GOOD, "reference_id": "image_2", "label": "hat"})
        assert errors == [
            {"index": 1, "field": "label", "message": "Not a label of “clothing_type”: hat (labels: shirt, pants, dress)."}
        ]

    def test_it_refuses_the_label_of_a_single_label_taxonomy_given_as_a_list(self, labeler_client, dataset):
        errors = self.refused(labeler_client, dataset, {**self.GOOD, "reference_id": "image_2", "label": ["shirt"]})
        assert errors == [
            {"index": 1, "field": "label", "message": "“clothing_type” is a single-label taxonomy: give one \"label\", not a list."}
        ]

    def test_it_refuses_labels_for_a_single_label_taxonomy(self, labeler_client, dataset):
        errors = self.refused(labeler_client, dataset, {"reference_id": "image_2", "taxonomy_name": "clothing_type", "labels": ["shirt"]})
        assert [error["field"] for error in errors] == ["label"]

    def test_it_refuses_an_empty_label(self, labeler_client, dataset):
        errors = self.refused(labeler_client, dataset, {**self.GOOD, "reference_id": "image_2", "label": ""})
        assert errors == [{"index": 1, "field": "label", "message": "Choose a label for “clothing_type”."}]

    def test_it_refuses_a_multi_label_answer_without_labels(self, labeler_client, dataset):
        errors = self.refused(labeler_client, dataset, {"reference_id": "image_2", "taxonomy_name": "attributes", "label": "logo"})
        assert errors == [
            {"index": 1, "field": "labels", "message": "“attributes” is multi-label: give \"labels\" as a list of label names."}
        ]

    def test_it_refuses_multi_label_labels_that_are_not_a_list(self, labeler_client, dataset):
        errors = self.refused(labeler_client, dataset, {"reference_id": "image_2", "taxonomy_name": "attributes", "labels": "logo"})
        assert [error["field"] for error in errors] == ["labels"]

    def test_it_refuses_a_label_listed_twice(self, labeler_client, dataset):
        errors = self.refused(labeler_client, dataset, {"reference_id": "image_2", "taxonomy_name": "attributes", "labels": ["logo", "logo"]})
        assert errors == [{"index": 1, "field": "labels", "message": "A label is listed more than once."}]

    def test_it_refuses_an_item_and_taxonomy_twice_in_the_batch(self, labeler_client, dataset):
        errors = self.refused(labeler_client, dataset, {**self.GOOD, "label": "dress"})
        assert errors == [{"index": 1, "field": "taxonomy_name", "message": "This reference_id and taxonomy_name are already in the batch."}]

    def test_it_refuses_a_taxonomy_that_applies_to_scenes_only(self, labeler_client, dataset):
        taxonomy_create(dataset=dataset, taxonomy_name="weather", labels=["sun"], applies_to="scenes")
        errors = self.refused(labeler_client, dataset, {"reference_id": "image_2", "taxonomy_name": "weather", "label": "sun"})
        assert errors == [{"index": 1, "field": "taxonomy_name", "message": "“weather” applies to scenes, not items."}]

    @pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
    def test_it_refuses_non_finite_numbers_in_metadata(self, labeler_client, dataset, value):
        before = row_counts()
        response = post_raw(labeler_client, dataset, f'{{"reference_id": "image_1", "taxonomy_name": "clothing_type", "label": "shirt", "metadata": {{"x": {value}}}}}')
        assert response.status_code == 400
        assert errors_of(response) == [
            {"index": 0, "field": "metadata", "message": "metadata contains NaN or Infinity (at metadata['x']); use null or a finite number."}
        ]
        assert row_counts() == before

    def test_it_refuses_an_empty_list(self, labeler_client, dataset):
        response = post(labeler_client, dataset, [])
        assert (response.status_code, errors_of(response)) == (400, [{"field": "", "message": "Send at least one annotation."}])

    @pytest.mark.parametrize("text", ['"shirt"', "3", "null"])
    def test_it_refuses_a_body_that_is_neither_an_object_nor_a_list(self, labeler_client, dataset, text):
        response = post_raw(labeler_client, dataset, text)
        assert (response.status_code, where(response)) == (400, [(None, "")])

    def test_it_refuses_a_row_that_is_not_an_object(self, labeler_client, dataset):
        before = row_counts()
        response = post(labeler_client, dataset, [self.GOOD, "shirt", ["image_1"]])
        assert response.status_code == 400
        assert errors_of(response) == [
            {"index": 1, "field": "", "message": "Each annotation is a JSON object."},
            {"index": 2, "field": "", "message": "Each annotation is a JSON object."},
        ]
        assert row_counts() == before

    def test_a_batch_with_3_bad_rows_among_100_names_exactly_those_and_stores_none(self, labeler_client, dataset):
        for n in range(4, 101):
            item_with_task(dataset, f"image_{n}")
        rows = [{"reference_id": f"image_{n}", "taxonomy_name": "clothing_type", "label": "shirt"} for n in range(1, 101)]
        rows[10]["label"] = "hat"
        rows[55]["taxonomy_name"] = "colour"
        rows[99]["reference_id"] = "image_999"
        before = row_counts()
        response = post(labeler_client, dataset, rows)
        assert response.status_code == 400
        assert [error["index"] for error in errors_of(response)] == [10, 55, 99]
        assert row_counts() == before

    def test_it_refuses_an_unknown_field(self, labeler_client, dataset):
        errors = self.refused(labeler_client, dataset, {**self.GOOD, "reference_id": "image_2", "metdata": {"source": "script"}})
        assert [error["field"] for error in errors] == ["metdata"]

    @pytest.mark.parametrize("metadata", [[], "", 0])
    def test_it_refuses_metadata_that_is_not_an_object(self, labeler_client, dataset, metadata):
        errors = self.refused(labeler_client, dataset, {**self.GOOD, "reference_id": "image_2", "metadata": metadata})
        assert [error["field"] for error in errors] == ["metadata"]


class TestList:
    def listed(self, client, dataset, query: str = "") -> list[tuple[str, str]]:
        response = client.get(url("annotation-list", dataset_id=dataset.id) + query)
        assert response.status_code == 200
        return [(row["reference_id"], row["taxonomy_name"]) for row in response.json()["results"]]

    @pytest.fixture
    def answered(self, dataset, items, clothing_type, attributes, labeler):
        dana = UserFactory(username="dana")
        answer(target=items[0], taxonomy=clothing_type, names=["shirt"], annotator=labeler)
        answer(target=items[0], taxonomy=attributes, names=["logo", "striped"], annotator=labeler)
        answer(target=items[1], taxonomy=clothing_type, names=["pants"], annotator=dana)
        answer(target=items[2], taxonomy=clothing_type, names=["shirt"], annotator=dana, finished=False)

    def test_it_lists_annotations_in_nucleus_vocabulary(self, labeler_client, dataset, answered):
        body = labeler_client.get(url("annotation-list", dataset_id=dataset.id)).json()
        assert [(row["reference_id"], row["taxonomy_name"], row["label"], row["labels"], row["status"], row["annotator"]) for row in body["results"]] == [
            ("image_1", "clothing_type", "shirt", None, "finished", "bob"),
            ("image_1", "attributes", None, ["striped", "logo"], "finished", "bob"),
            ("image_2", "clothing_type", "pants", None, "finished", "dana"),
            ("image_3", "clothing_type", "shirt", None, "draft", "dana"),
        ]
        assert body["next"] is None

    def test_it_filters_by_status(self, labeler_client, dataset, answered):
        assert self.listed(labeler_client, dataset, "?status=draft") == [("image_3", "clothing_type")]

    def test_it_filters_by_taxonomy(self, labeler_client, dataset, answered):
        assert self.listed(labeler_client, dataset, "?taxonomy=attributes") == [("image_1", "attributes")]

    def test_it_filters_by_label_single_or_multi(self, labeler_client, dataset, answered):
        assert self.listed(labeler_client, dataset, "?label=shirt") == [("image_1", "clothing_type"), ("image_3", "clothing_type")]
        assert self.listed(labeler_client, dataset, "?label=striped") == [("image_1", "attributes")]

    def test_it_filters_by_annotator(self, labeler_client, dataset, answered):
        assert self.listed(labeler_client, dataset, "?annotator=dana") == [("image_2", "clothing_type"), ("image_3", "clothing_type")]

    def test_it_filters_by_reference_id(self, labeler_client, dataset, answered):
        assert self.listed(labeler_client, dataset, "?reference_id=image_1") == [("image_1", "clothing_type"), ("image_1", "attributes")]

    def test_it_combines_filters(self, labeler_client, dataset, answered):
        assert self.listed(labeler_client, dataset, "?annotator=dana&status=finished&label=pants") == [("image_2", "clothing_type")]

    def test_it_refuses_an_unknown_status(self, labeler_client, dataset):
        response = labeler_client.get(url("annotation-list", dataset_id=dataset.id) + "?status=open")
        assert (response.status_code, [error["field"] for error in errors_of(response)]) == (400, ["status"])

    def test_next_links_walk_every_annotation_once(self, labeler_client, dataset, answered):
        seen, link = [], url("annotation-list", dataset_id=dataset.id) + "?limit=2"
        while link:
            body = labeler_client.get(link).json()
            seen += [row["id"] for row in body["results"]]
            link = body["next"]
        assert seen == list(CategoryAnnotation.objects.order_by("id").values_list("id", flat=True))

    @pytest.mark.parametrize("query", ["?after=x", "?limit=0"])
    def test_it_refuses_a_bad_after_or_limit(self, labeler_client, dataset, query):
        assert labeler_client.get(url("annotation-list", dataset_id=dataset.id) + query).status_code == 400


class TestExport:
    def test_it_streams_finished_annotations_as_json_lines_in_nucleus_vocabulary(self, labeler_client, dataset, items, clothing_type, labeler):
        answer(target=items[0], taxonomy=clothing_type, names=["shirt"], annotator=labeler)
        answer(target=items[1], taxonomy=clothing_type, names=["pants"], annotator=labeler, finished=False)
        response = labeler_client.get(url("export", dataset_id=dataset.id))
        assert (response.status_code, response["Content-Type"]) == (200, "application/x-ndjson")
        lines = [json.loads(line) for line in b"".join(response.streaming_content).decode().splitlines()]
        assert [(line["reference_id"], line["taxonomy_name"], line["label"], line["metadata"]) for line in lines] == [
            ("image_1", "clothing_type", "shirt", {})
        ]
