"""dataset_sync against the fake Nucleus through the real SDK: what arrives there, in which requests.

Expected payloads are built here by the SDK's own classes from values the test chose."""

import functools

import nucleus
import pytest
import tqdm
from django.db import connection
from django.test.utils import CaptureQueriesContext

from labeling.models import CategoryAnnotation, Dataset
from labeling.nucleus import remote_dataset
from taxonomies.services import taxonomy_create
from tests.factories import ItemFactory, SceneFactory
from tests.labeling.sync.support import finish, sync

pytestmark = pytest.mark.django_db
State = CategoryAnnotation.SyncState


def test_a_single_label_annotation_arrives_as_the_sdk_builds_it_and_is_marked_synced(linked, items, clothing_type, fake_nucleus):
    annotation = finish(items[0], clothing_type, "shirt", metadata={"color": "off-white"})

    report = sync(linked)

    expected = nucleus.CategoryAnnotation(
        label="shirt", reference_id="image_0", taxonomy_name="clothing_type", metadata={"color": "off-white"}
    ).to_payload()
    assert fake_nucleus.annotations(linked.nucleus_dataset_id) == {("image_0", "clothing_type"): expected}
    (annotate,) = fake_nucleus.requests_to("annotate")
    assert annotate.json == {"update": True, "annotations": [expected]}
    assert annotate.api_key == fake_nucleus.api_key
    annotation.refresh_from_db()
    assert (annotation.sync_state, annotation.synced_version, annotation.sync_claim) == (State.SYNCED, annotation.version, None)
    assert (report.synced, report.failed, report.retrying, report.batches) == (1, 0, 0, 1)


def test_the_taxonomy_is_created_with_all_its_labels_before_its_annotations(linked, items, clothing_type, fake_nucleus):
    finish(items[0], clothing_type, "pants")

    sync(linked)

    assert [request.route for request in fake_nucleus.requests] == ["add_taxonomy", "annotate"]
    assert fake_nucleus.requests[0].json == {
        "taxonomy_name": "clothing_type", "type": "category", "labels": ["shirt", "pants", "dress"], "update": True,
    }
    clothing_type.refresh_from_db()
    assert clothing_type.nucleus_labels == ["shirt", "pants", "dress"]


def test_a_second_sync_with_nothing_new_sends_nothing(linked, items, clothing_type, fake_nucleus):
    finish(items[0], clothing_type, "pants")
    sync(linked)
    sent = len(fake_nucleus.requests)

    report = sync(linked)

    assert len(fake_nucleus.requests) == sent
    assert report.batches == 0


def test_a_multi_label_annotation_goes_as_one_true_or_false_annotation_per_label(linked, items, attributes, fake_nucleus):
    finish(items[1], attributes, "logo")

    sync(linked)

    creations = [request.json for request in fake_nucleus.requests_to("add_taxonomy")]
    assert creations == [
        {"taxonomy_name": "attributes:striped", "type": "category", "labels": ["True", "False"], "update": True},
        {"taxonomy_name": "attributes:logo", "type": "category", "labels": ["True", "False"], "update": True},
    ]
    assert fake_nucleus.requests[-1].route == "annotate"  # the binary taxonomies came first
    assert fake_nucleus.annotations(linked.nucleus_dataset_id) == {
        ("image_1", f"attributes:{label}"): nucleus.CategoryAnnotation(
            label=value, reference_id="image_1", taxonomy_name=f"attributes:{label}", metadata={}
        ).to_payload()
        for label, value in [("striped", "False"), ("logo", "True")]
    }


def test_a_multi_label_annotation_with_nothing_chosen_says_false_for_every_label(linked, items, attributes, fake_nucleus):
    finish(items[0], attributes)

    sync(linked)

    assert fake_nucleus.labels(linked.nucleus_dataset_id) == {
        ("image_0", "attributes:striped"): "False", ("image_0", "attributes:logo"): "False",
    }


def test_scene_annotations_are_sent_as_scene_category_annotations(db, fake_nucleus, nucleus_settings):
    scenes = Dataset.objects.create(name="Videos", kind=Dataset.Kind.SCENES, nucleus_dataset_id=fake_nucleus.create_dataset("Videos", is_scene=True))
    scene = SceneFactory(dataset=scenes, reference_id="scene_1")
    fake_nucleus.add_scenes(scenes.nucleus_dataset_id, [{"reference_id": "scene_1", "video_url": scene.video_url, "metadata": {}}])
    weather = taxonomy_create(dataset=scenes, taxonomy_name="weather", labels=["sunny", "rain"], applies_to="scenes")
    finish(scene, weather, "rain", metadata={"source": "review"})

    sync(scenes)

    expected = nucleus.SceneCategoryAnnotation(
        label="rain", reference_id="scene_1", taxonomy_name="weather", metadata={"source": "review"}
    ).to_payload()
    assert fake_nucleus.annotations(scenes.nucleus_dataset_id) == {("scene_1", "weather"): expected}
    assert "track_reference_id" not in expected  # what tells it apart from an item's annotation


def test_requests_carry_at_most_the_batch_size_of_payloads(linked, fake_nucleus, clothing_type, attributes, nucleus_settings):
    nucleus_settings.NUCLEUS_BATCH_SIZE = 5
    made = [ItemFactory(dataset=linked, reference_id=f"image_{n}") for n in range(7)]
    fake_nucleus.add_items(linked.nucleus_dataset_id, [{"reference_id": i.reference_id, "image_url": i.image_url} for i in made])
    for item in made:
        finish(item, clothing_type, "shirt")
        finish(item, attributes, "striped")  # 2 payloads each

    report = sync(linked)

    sizes = [len(request.json["annotations"]) for request in fake_nucleus.requests_to("annotate")]
    assert max(sizes) <= 5
    assert sum(sizes) == 7 * 3 == report.payloads
    assert len(fake_nucleus.annotations(linked.nucleus_dataset_id)) == 21
    assert report.synced == 14


def test_one_batch_takes_the_same_queries_whatever_its_size(linked, fake_nucleus, clothing_type, attributes):
    made = [ItemFactory(dataset=linked, reference_id=f"image_{n}") for n in range(40)]
    fake_nucleus.add_items(linked.nucleus_dataset_id, [{"reference_id": i.reference_id, "image_url": i.image_url} for i in made])
    for item in made:
        finish(item, clothing_type, "shirt")
        finish(item, attributes, "logo")
    sync(linked)  # taxonomies created; now only annotations change
    for item in made:
        finish(item, clothing_type, "dress")
        finish(item, attributes, "striped")
    linked.refresh_from_db()

    with CaptureQueriesContext(connection) as queries:
        report = sync(linked)

    # 1 the dataset (refresh_from_db), 1 the widest multi-label taxonomy, 1 taxonomies deleted here
    # to delete there (none), 2 taxonomies out of date (taxonomies, their labels), then for the one
    # batch: 1 claim, 3 read (annotations with item, scene, taxonomy and label; chosen labels; the
    # taxonomies' labels), 1 lease renewal, 1 synced (all at version 2), 1 release, and 1 claim that
    # finds nothing.
    assert report.batches == 1 and report.synced == 80
    assert len(queries) == 13, "\n".join(query["sql"] for query in queries.captured_queries)


def test_the_one_attempt_transport_sends_exactly_what_the_sdk_s_own_sends(fake_nucleus, nucleus_settings):
    dataset_id = fake_nucleus.create_dataset("Transport")
    fake_nucleus.add_items(dataset_id, [{"reference_id": "image_0", "image_url": "https://a.test/0.jpg"}])
    annotation = nucleus.CategoryAnnotation(label="shirt", reference_id="image_0", taxonomy_name="clothing_type", metadata={"n": 1})
    client = nucleus.NucleusClient(api_key=fake_nucleus.api_key, endpoint=fake_nucleus.endpoint)
    client.tqdm_bar = functools.partial(tqdm.tqdm, disable=True)
    sdk_dataset = client.get_dataset(dataset_id)
    sdk_dataset.add_taxonomy("clothing_type", "category", ["shirt"], update=True)
    sdk_dataset.annotate([annotation], update=True)
    sdk_dataset.delete_taxonomy("clothing_type")
    with remote_dataset(dataset_id) as remote:
        remote.add_taxonomy("clothing_type", ["shirt"])
        remote.annotate([annotation.to_payload()])
        remote.delete_taxonomy("clothing_type")

    def seen(request):
        return (request.method, request.path, request.query, request.body, request.api_key, request.headers["content-type"])

    by_sdk, by_us = fake_nucleus.requests[:3], fake_nucleus.requests[3:]
    assert [seen(request) for request in by_us] == [seen(request) for request in by_sdk]
    assert [request.route for request in by_us] == ["add_taxonomy", "annotate", "delete_taxonomy"]
