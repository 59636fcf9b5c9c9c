"""Changes after a sync: relabels (before and during a send) and taxonomies whose labels change."""

import pytest

from labeling.models import CategoryAnnotation
from labeling.nucleus import RemoteDataset
from labeling.services.taxonomy_removals import label_remove
from taxonomies.services import label_update, taxonomy_add_labels
from tests.labeling.sync.support import finish, sync

pytestmark = pytest.mark.django_db
State = CategoryAnnotation.SyncState


def test_a_relabel_after_a_sync_is_sent_again_and_replaces_the_label_there(linked, items, clothing_type, fake_nucleus):
    annotation = finish(items[0], clothing_type, "shirt")
    sync(linked)

    finish(items[0], clothing_type, "dress")
    sync(linked)

    assert fake_nucleus.labels(linked.nucleus_dataset_id) == {("image_0", "clothing_type"): "dress"}
    assert [request.json["update"] for request in fake_nucleus.requests_to("annotate")] == [True, True]
    annotation.refresh_from_db()
    assert (annotation.version, annotation.synced_version, annotation.sync_state) == (2, 2, State.SYNCED)


def test_a_relabel_while_the_batch_is_in_flight_stays_pending_and_is_sent_again(linked, items, clothing_type, fake_nucleus, monkeypatch):
    annotation = finish(items[0], clothing_type, "shirt")
    real_annotate = RemoteDataset.annotate
    relabelled = []

    def annotate_then_relabel(remote, annotations):
        answer = real_annotate(remote, annotations)
        if not relabelled:  # a labeler changes their answer while Nucleus has the first one
            relabelled.append(finish(items[0], clothing_type, "pants"))
        return answer

    monkeypatch.setattr(RemoteDataset, "annotate", annotate_then_relabel)

    report = sync(linked)

    sent = [request.json["annotations"][0]["label"] for request in fake_nucleus.requests_to("annotate")]
    assert sent == ["shirt", "pants"]
    assert fake_nucleus.labels(linked.nucleus_dataset_id) == {("image_0", "clothing_type"): "pants"}
    annotation.refresh_from_db()
    assert (annotation.version, annotation.synced_version, annotation.sync_state) == (2, 2, State.SYNCED)
    assert report.batches == 2


def test_an_added_label_is_appended_to_the_taxonomy_there_without_rebuilding_it(linked, items, clothing_type, fake_nucleus):
    first = finish(items[0], clothing_type, "shirt")
    sync(linked)
    taxonomy_add_labels(taxonomy=clothing_type, labels=["coat"])
    finish(items[1], clothing_type, "coat")

    sync(linked)

    assert fake_nucleus.taxonomies(linked.nucleus_dataset_id) == {"clothing_type": ["shirt", "pants", "dress", "coat"]}
    assert fake_nucleus.requests_to("delete_taxonomy") == []
    assert fake_nucleus.requests_to("add_taxonomy")[-1].json["update"] is True
    assert [len(request.json["annotations"]) for request in fake_nucleus.requests_to("annotate")] == [1, 1]
    assert fake_nucleus.labels(linked.nucleus_dataset_id) == {("image_0", "clothing_type"): "shirt", ("image_1", "clothing_type"): "coat"}
    first.refresh_from_db()
    assert first.sync_state == State.SYNCED


def test_a_renamed_label_rebuilds_the_taxonomy_there_and_sends_every_annotation_again(linked, items, clothing_type, fake_nucleus):
    for item, name in zip(items, ["shirt", "pants", "shirt"], strict=True):
        finish(item, clothing_type, name)
    sync(linked)

    label_update(label=clothing_type.labels.get(name="shirt"), name="top", hotkey="", position=0)
    report = sync(linked)

    routes = [request.route for request in fake_nucleus.requests]
    assert routes[2:] == ["delete_taxonomy", "add_taxonomy", "annotate"]
    assert fake_nucleus.taxonomies(linked.nucleus_dataset_id) == {"clothing_type": ["top", "pants", "dress"]}
    assert fake_nucleus.labels(linked.nucleus_dataset_id) == {
        ("image_0", "clothing_type"): "top", ("image_1", "clothing_type"): "pants", ("image_2", "clothing_type"): "top",
    }
    assert report.synced == 3
    assert set(CategoryAnnotation.objects.values_list("sync_state", flat=True)) == {State.SYNCED}


def test_a_removed_label_rebuilds_the_taxonomy_with_the_relabelled_annotations(linked, items, clothing_type, fake_nucleus):
    finish(items[0], clothing_type, "shirt")
    finish(items[1], clothing_type, "dress")
    sync(linked)

    label_remove(label=clothing_type.labels.get(name="shirt"), relabel_to=clothing_type.labels.get(name="pants"))
    sync(linked)

    assert fake_nucleus.taxonomies(linked.nucleus_dataset_id) == {"clothing_type": ["pants", "dress"]}
    assert fake_nucleus.labels(linked.nucleus_dataset_id) == {("image_0", "clothing_type"): "pants", ("image_1", "clothing_type"): "dress"}


def test_a_renamed_class_of_a_multi_label_taxonomy_replaces_its_binary_taxonomy(linked, items, attributes, fake_nucleus):
    finish(items[0], attributes, "striped")
    finish(items[1], attributes, "logo")
    sync(linked)

    label_update(label=attributes.labels.get(name="logo"), name="print", hotkey="", position=1)
    sync(linked)

    assert [request.path.rsplit("/", 1)[1] for request in fake_nucleus.requests_to("delete_taxonomy")] == ["attributes:logo"]
    assert fake_nucleus.taxonomies(linked.nucleus_dataset_id) == {
        "attributes:striped": ["True", "False"], "attributes:print": ["True", "False"],
    }
    assert fake_nucleus.labels(linked.nucleus_dataset_id) == {
        ("image_0", "attributes:striped"): "True", ("image_0", "attributes:print"): "False",
        ("image_1", "attributes:striped"): "False", ("image_1", "attributes:print"): "True",
    }


def test_a_rename_is_rebuilt_even_when_no_annotation_is_pending(linked, items, clothing_type, fake_nucleus):
    finish(items[0], clothing_type, "shirt")
    sync(linked)
    label_update(label=clothing_type.labels.get(name="shirt"), name="top", hotkey="", position=0)

    assert CategoryAnnotation.objects.filter(sync_state=State.PENDING).count() == 0
    sync(linked)

    assert fake_nucleus.labels(linked.nucleus_dataset_id) == {("image_0", "clothing_type"): "top"}


def test_a_rebuild_takes_back_the_batch_another_worker_is_sending(linked, items, clothing_type):
    """Its send may land before the delete: it must not be marked synced, and goes again."""
    annotation = finish(items[0], clothing_type, "shirt")
    sync(linked)
    finish(items[0], clothing_type, "pants")
    CategoryAnnotation.objects.filter(pk=annotation.pk).update(sync_claim="another-worker", sync_claimed_until="2999-01-01T00:00:00Z")
    label_update(label=clothing_type.labels.get(name="dress"), name="skirt", hotkey="", position=2)

    sync(linked)

    annotation.refresh_from_db()
    assert annotation.sync_claim is None
    assert (annotation.sync_state, annotation.synced_version) == (State.SYNCED, 2)
