"""labeling.nucleus.annotation_payloads, the one payload builder of export, dry-run and sync, is
equal line by line (keys, their order, values) to what the SDK's own classes build. The expected
lines are built here by `nucleus.CategoryAnnotation` / `nucleus.SceneCategoryAnnotation` from
values the test chose, never from the rows the builder reads."""

import nucleus
import pytest

from labeling.models import CategoryAnnotation, Dataset
from labeling.nucleus import annotation_payloads
from labeling.services.annotations import annotation_save
from taxonomies.services import taxonomy_add_labels, taxonomy_create
from tests.factories import DatasetFactory, ItemFactory, SceneFactory

pytestmark = pytest.mark.django_db

METADATA = {"note": "chemise à carreaux ✓ 日本語", "camera": {"exposure": [1, 2.5, None, True]}, "score": 0.75}


def line(payload: dict) -> tuple[list[str], dict]:
    """A payload's keys in order and its content (PostgreSQL's jsonb does not keep the key order of
    metadata, so that is compared as a value)."""
    return list(payload), payload


def built(annotation: CategoryAnnotation) -> list[tuple]:
    """The builder's payloads of a freshly read annotation."""
    fresh = (
        CategoryAnnotation.objects.select_related("item", "scene", "taxonomy", "label")
        .prefetch_related("labels", "taxonomy__labels")
        .get(pk=annotation.pk)
    )
    return [line(payload) for payload in annotation_payloads(fresh)]


def sdk(build, **fields) -> tuple:
    return line(build(**fields).to_payload())


def finish(target, taxonomy, names, *, metadata=None, shown=None):
    labels = [taxonomy.labels.get(name=name) for name in names]
    shown_labels = None if shown is None else [taxonomy.labels.get(name=name) for name in shown]
    return annotation_save(
        target=target, taxonomy=taxonomy, labels=labels, annotator=None, finished=True, metadata=metadata, shown=shown_labels
    ).annotation


@pytest.mark.parametrize("metadata", [None, {}, METADATA], ids=["no-metadata", "empty", "rich"])
def test_a_single_label_item_annotation_is_the_sdk_s_category_annotation(dataset, clothing_type, metadata):
    item = ItemFactory(dataset=dataset, reference_id="imäge 1 ✓")
    annotation = finish(item, clothing_type, ["pants"], metadata=metadata)

    assert built(annotation) == [
        sdk(nucleus.CategoryAnnotation, label="pants", reference_id="imäge 1 ✓", taxonomy_name="clothing_type", metadata=metadata)
    ]


@pytest.mark.parametrize("metadata", [None, METADATA], ids=["no-metadata", "rich"])
def test_a_single_label_scene_annotation_is_the_sdk_s_scene_category_annotation(metadata):
    scenes = DatasetFactory(kind=Dataset.Kind.SCENES)
    action = taxonomy_create(dataset=scenes, taxonomy_name="action", labels=["walking", "running"], applies_to="scenes")
    scene = SceneFactory(dataset=scenes, reference_id="drive_1")
    annotation = finish(scene, action, ["running"], metadata=metadata)

    expected = sdk(nucleus.SceneCategoryAnnotation, label="running", reference_id="drive_1", taxonomy_name="action", metadata=metadata or {})
    assert built(annotation) == [expected]


def test_a_multi_label_answer_is_one_sdk_true_or_false_line_per_class_shown_in_the_taxonomy_s_order(dataset, attributes):
    item = ItemFactory(dataset=dataset, reference_id="image_1")
    annotation = finish(item, attributes, ["long_sleeves"], metadata=METADATA, shown=["long_sleeves", "striped"])

    assert built(annotation) == [
        sdk(nucleus.CategoryAnnotation, label=value, reference_id="image_1", taxonomy_name=f"attributes:{label}", metadata=METADATA)
        for label, value in [("striped", "False"), ("long_sleeves", "True")]
    ]


def test_a_multi_label_scene_answer_is_scene_category_lines(db):
    scenes = DatasetFactory(kind=Dataset.Kind.SCENES)
    weather = taxonomy_create(dataset=scenes, taxonomy_name="weather", labels=["rain", "fog"], multi_label=True, applies_to="scenes")
    scene = SceneFactory(dataset=scenes, reference_id="drive_2")
    annotation = finish(scene, weather, [])

    assert built(annotation) == [
        sdk(nucleus.SceneCategoryAnnotation, label="False", reference_id="drive_2", taxonomy_name=f"weather:{label}", metadata={})
        for label in ["rain", "fog"]
    ]


def test_a_class_added_after_the_answer_has_no_line_and_a_class_removed_since_has_none_either(dataset, attributes):
    item = ItemFactory(dataset=dataset, reference_id="image_1")
    annotation = finish(item, attributes, ["logo"])
    taxonomy_add_labels(taxonomy=attributes, labels=["hood"])
    attributes.labels.get(name="striped").delete()

    assert built(annotation) == [
        sdk(nucleus.CategoryAnnotation, label=value, reference_id="image_1", taxonomy_name=f"attributes:{label}", metadata={})
        for label, value in [("logo", "True"), ("long_sleeves", "False")]
    ]
