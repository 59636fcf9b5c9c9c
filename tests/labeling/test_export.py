"""GET datasets/{id}/export/: finished annotations as JSON Lines, each line exactly the payload the
Nucleus SDK builds. The expected lines are built here by the real `scale-nucleus` classes from the
values the test chose, never from the rows the export reads."""

import json

import nucleus
import pytest
from django.db import connection
from django.http import StreamingHttpResponse
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from labeling.models import Dataset, DatasetMember
from labeling.services.annotations import annotation_save
from taxonomies.services import taxonomy_create
from tests.factories import DatasetFactory, DatasetMemberFactory, ItemFactory, SceneFactory

pytestmark = pytest.mark.django_db

# Nested values and text outside ASCII, to prove the export neither flattens nor mangles metadata.
RICH_METADATA = {
    "note": "chemise à carreaux ✓ 日本語 🧵",
    "camera": {"model": "Ñikon", "exposure": [1, 2.5, None, True], "tags": {"tîtle": "été"}},
    "score": 0.75,
}


def answer(*, target, taxonomy, names, annotator, finished=True, metadata=None):
    labels = [taxonomy.labels.get(name=name) for name in names]
    return annotation_save(
        target=target, taxonomy=taxonomy, labels=labels, annotator=annotator, finished=finished, metadata=metadata
    )


def item_payload(**fields) -> dict:
    return nucleus.CategoryAnnotation(**fields).to_payload()


def scene_payload(**fields) -> dict:
    return nucleus.SceneCategoryAnnotation(**fields).to_payload()


def multi_label_payloads(build, *, reference_id, taxonomy_name, labels, chosen, metadata) -> list[dict]:
    """Nucleus's multi-label convention: one binary taxonomy "<name>:<label>" per label, True/False."""
    return [
        build(
            label="True" if label in chosen else "False",
            reference_id=reference_id,
            taxonomy_name=f"{taxonomy_name}:{label}",
            metadata=metadata,
        )
        for label in labels
    ]


def export(user, dataset) -> StreamingHttpResponse:
    client = APIClient()
    client.force_authenticate(user)
    return client.get(f"/api/v1/datasets/{dataset.id}/export/")


def lines_of(response) -> list[dict]:
    body = b"".join(response.streaming_content).decode("utf-8")
    assert body.endswith("\n")
    return [json.loads(line) for line in body.split("\n")[:-1]]


class TestExportOfAnImagesDataset:
    def test_each_line_is_the_sdk_payload_of_a_finished_annotation_in_order(self, dataset, labeler, clothing_type, attributes):
        shirt = ItemFactory(dataset=dataset, reference_id="image_1")
        pants = ItemFactory(dataset=dataset, reference_id="imäge_2 ✓")
        plain = ItemFactory(dataset=dataset, reference_id="image_3")
        drafted = ItemFactory(dataset=dataset, reference_id="image_draft")
        answer(target=shirt, taxonomy=clothing_type, names=["shirt"], annotator=labeler, metadata=RICH_METADATA)
        answer(target=pants, taxonomy=clothing_type, names=["pants"], annotator=labeler)
        answer(target=shirt, taxonomy=attributes, names=[], annotator=labeler)
        answer(target=pants, taxonomy=attributes, names=["logo"], annotator=labeler, metadata={"ünïcode": ["ß", {"k": 1}]})
        answer(target=plain, taxonomy=attributes, names=["long_sleeves", "striped"], annotator=labeler)
        # Drafts are work in progress: never exported, in either kind of taxonomy.
        answer(target=drafted, taxonomy=clothing_type, names=["dress"], annotator=labeler, finished=False)
        answer(target=drafted, taxonomy=attributes, names=["logo"], annotator=labeler, finished=False)

        response = export(labeler, dataset)

        attribute_labels = ["striped", "logo", "long_sleeves"]
        assert lines_of(response) == [
            item_payload(label="shirt", reference_id="image_1", taxonomy_name="clothing_type", metadata=RICH_METADATA),
            item_payload(label="pants", reference_id="imäge_2 ✓", taxonomy_name="clothing_type", metadata={}),
            *multi_label_payloads(
                item_payload, reference_id="image_1", taxonomy_name="attributes", labels=attribute_labels, chosen=set(), metadata={}
            ),
            *multi_label_payloads(
                item_payload, reference_id="imäge_2 ✓", taxonomy_name="attributes", labels=attribute_labels,
                chosen={"logo"}, metadata={"ünïcode": ["ß", {"k": 1}]},
            ),
            *multi_label_payloads(
                item_payload, reference_id="image_3", taxonomy_name="attributes", labels=attribute_labels,
                chosen={"long_sleeves", "striped"}, metadata={},
            ),
        ]

    def test_each_line_is_byte_for_byte_the_json_of_the_sdk_payload(self, dataset, labeler, clothing_type):
        # One key per level: PostgreSQL's jsonb does not keep the key order of metadata (the
        # payload's own keys, label first, are what this test pins).
        metadata = {"camera": {"exposure": [1, 2.5, None, True, "ü ✓ 日本"]}}
        item = ItemFactory(dataset=dataset, reference_id="image_1")
        answer(target=item, taxonomy=clothing_type, names=["dress"], annotator=labeler, metadata=metadata)

        body = b"".join(export(labeler, dataset).streaming_content).decode("utf-8")

        expected = item_payload(label="dress", reference_id="image_1", taxonomy_name="clothing_type", metadata=metadata)
        assert body == json.dumps(expected) + "\n"

    def test_it_is_streamed_as_ndjson_with_a_file_name(self, dataset, labeler, clothing_type):
        answer(target=ItemFactory(dataset=dataset), taxonomy=clothing_type, names=["shirt"], annotator=labeler)

        response = export(labeler, dataset)

        assert response.status_code == 200
        assert isinstance(response, StreamingHttpResponse)
        assert response["Content-Type"] == "application/x-ndjson"
        assert response["Content-Disposition"] == f'attachment; filename="dataset-{dataset.id}-annotations.jsonl"'

    def test_a_dataset_without_finished_annotations_exports_nothing(self, dataset, labeler, clothing_type):
        answer(target=ItemFactory(dataset=dataset), taxonomy=clothing_type, names=["shirt"], annotator=labeler, finished=False)

        assert b"".join(export(labeler, dataset).streaming_content) == b""

    def test_an_outsider_gets_a_404(self, dataset, outsider):
        assert export(outsider, dataset).status_code == 404

    @pytest.mark.parametrize("count", [10, 200])
    def test_the_number_of_queries_does_not_grow_with_the_annotations(self, dataset, labeler, clothing_type, attributes, count):
        for n in range(count):
            item = ItemFactory(dataset=dataset)
            taxonomy, names = (clothing_type, ["pants"]) if n % 2 else (attributes, ["logo", "striped"])
            answer(target=item, taxonomy=taxonomy, names=names, annotator=labeler)
        client = APIClient()
        client.force_authenticate(labeler)

        with CaptureQueriesContext(connection) as queries:
            lines = lines_of(client.get(f"/api/v1/datasets/{dataset.id}/export/"))

        assert len(lines) == count // 2 + (count - count // 2) * 3
        # 1. the dataset with the member's role (dataset_get_for_user)
        # 2. the finished annotations with item, scene, taxonomy and label (one chunk of up to 2000)
        # 3. the chosen labels of the chunk's multi-label annotations (prefetch)
        # 4. the labels of the chunk's taxonomies (prefetch)
        assert len(queries) == 4, [query["sql"] for query in queries]


class TestExportOfASceneDataset:
    def test_scene_annotations_are_scene_payloads(self):
        scenes = DatasetFactory(name="Street scenes", kind=Dataset.Kind.SCENES)
        member = DatasetMemberFactory(dataset=scenes, role=DatasetMember.Role.LABELER).user
        action = taxonomy_create(dataset=scenes, taxonomy_name="action", labels=["walking", "running"], applies_to="scenes")
        weather = taxonomy_create(
            dataset=scenes, taxonomy_name="weather", labels=["rain", "fog"], multi_label=True, applies_to="scenes"
        )
        drive_1 = SceneFactory(dataset=scenes, reference_id="drive_1")
        drive_2 = SceneFactory(dataset=scenes, reference_id="drive_2 – nuit")
        answer(target=drive_1, taxonomy=action, names=["running"], annotator=member, metadata=RICH_METADATA)
        answer(target=drive_1, taxonomy=weather, names=["fog"], annotator=member)
        answer(target=drive_2, taxonomy=action, names=["walking"], annotator=member, finished=False)

        response = export(member, scenes)

        assert lines_of(response) == [
            scene_payload(label="running", reference_id="drive_1", taxonomy_name="action", metadata=RICH_METADATA),
            *multi_label_payloads(
                scene_payload, reference_id="drive_1", taxonomy_name="weather", labels=["rain", "fog"], chosen={"fog"}, metadata={}
            ),
        ]
        assert all("track_reference_id" not in line for line in lines_of(export(member, scenes)))
