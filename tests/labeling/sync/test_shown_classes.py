"""Export, `sync_nucleus --dry-run` and what Nucleus receives are the same payloads, also after a
class is added to a multi-label taxonomy with finished answers, and after those items are sent back
for just that class and answered again."""

import io
import json

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from labeling.models import CategoryAnnotation, DatasetMember, Task
from labeling.nucleus import annotation_payloads
from labeling.services.new_classes import taxonomy_ask_new_classes
from taxonomies.services import taxonomy_add_labels
from tests.factories import DatasetMemberFactory, UserFactory
from tests.labeling.sync.support import finish, sync

pytestmark = pytest.mark.django_db
State = CategoryAnnotation.SyncState


@pytest.fixture
def labeler(linked):
    return DatasetMemberFactory(dataset=linked, user=UserFactory(username="bob"), role=DatasetMember.Role.LABELER).user


@pytest.fixture
def tasks(items):
    return [Task.objects.create(dataset=item.dataset, item=item, state=Task.State.DONE) for item in items]


def key(payload: dict) -> str:
    return json.dumps(payload, sort_keys=True)


def exported(dataset, user) -> set[str]:
    client = APIClient()
    client.force_authenticate(user)
    body = b"".join(client.get(f"/api/v1/datasets/{dataset.id}/export/").streaming_content).decode()
    return {key(json.loads(line)) for line in body.splitlines()}


def dry_run(dataset) -> set[str]:
    out = io.StringIO()
    call_command("sync_nucleus", str(dataset.id), "--dry-run", stdout=out, stderr=io.StringIO())
    return {key(json.loads(line)) for line in out.getvalue().splitlines()}


def on_nucleus(fake_nucleus, dataset) -> set[str]:
    return {key(payload) for payload in fake_nucleus.annotations(dataset.nucleus_dataset_id).values()}


def labels_on_nucleus(fake_nucleus, dataset, reference_id: str) -> dict[str, str]:
    return {name: label for (ref, name), label in fake_nucleus.labels(dataset.nucleus_dataset_id).items() if ref == reference_id}


def test_export_dry_run_and_nucleus_agree_before_and_after_a_class_is_added(linked, items, tasks, clothing_type, attributes, labeler, fake_nucleus):
    for item in items[:2]:
        finish(item, clothing_type, "shirt")
        finish(item, attributes, "logo")
    assert dry_run(linked) == exported(linked, labeler)
    sync(linked)
    assert on_nucleus(fake_nucleus, linked) == exported(linked, labeler)

    taxonomy_add_labels(taxonomy=attributes, labels=["hood"])
    finish(items[2], clothing_type, "pants")
    newer = finish(items[2], attributes, "hood")

    pending = dry_run(linked)
    assert pending <= exported(linked, labeler) and len(pending) == 1 + 3  # items[2]: clothing_type, and 3 classes
    sync(linked)
    assert on_nucleus(fake_nucleus, linked) == exported(linked, labeler)
    # The older answers never saw "hood": nobody said False for it, here or on Nucleus.
    assert labels_on_nucleus(fake_nucleus, linked, "image_0") == {"clothing_type": "shirt", "attributes:striped": "False", "attributes:logo": "True"}
    assert labels_on_nucleus(fake_nucleus, linked, "image_2")["attributes:hood"] == "True"
    newer.refresh_from_db()
    assert newer.shown_label_ids == sorted(attributes.labels.values_list("id", flat=True))


def test_items_sent_back_for_a_new_class_add_its_payloads_and_keep_the_first_answers(
    linked, items, tasks, clothing_type, attributes, labeler, fake_nucleus
):
    first = []
    for item in items[:2]:
        finish(item, clothing_type, "shirt", metadata={"note": "kept"})
        first.append(finish(item, attributes, "logo", metadata={"by": "first labeler"}))
    sync(linked)
    taxonomy_add_labels(taxonomy=attributes, labels=["hood"])

    asked = taxonomy_ask_new_classes(taxonomy=attributes)

    assert (asked.annotations, asked.tasks_reopened, asked.classes) == (2, 2, ["hood"])
    assert dry_run(linked) == set()  # nothing goes to Nucleus again because of it
    client = APIClient()
    client.force_authenticate(labeler)
    held = client.post(f"/api/v1/datasets/{linked.id}/next/").json()
    assert held["reference_id"] == "image_0"
    (sent_back,) = [answer for answer in held["annotations"] if answer["taxonomy_name"] == "attributes"]
    assert sent_back["new_classes"] == ["hood"]
    # What the labeling page sends: the new class answered, the other finished answers as they were.
    rows = [
        {"taxonomy_name": "clothing_type", "label": "shirt", "metadata": {"note": "kept"}},
        {"taxonomy_name": "attributes", "labels": ["hood"], "shown": ["hood"], "metadata": {"by": "first labeler"}},
    ]
    response = client.post(f"/api/v1/datasets/{linked.id}/submit/", {"reference_id": "image_0", "annotations": rows}, format="json")
    assert response.status_code == 200, response.content

    answered = CategoryAnnotation.objects.get(pk=first[0].pk)
    assert sorted(answered.chosen_label_names()) == ["hood", "logo"]
    assert answered.shown_label_ids == sorted(attributes.labels.values_list("id", flat=True))
    assert (answered.version, answered.asked_label_ids) == (first[0].version + 1, None)
    assert CategoryAnnotation.objects.get(item=items[0], taxonomy=clothing_type).version == 1  # unchanged, not resent
    assert dry_run(linked) == {key(payload) for payload in pending_payloads(answered)}
    sync(linked)
    assert on_nucleus(fake_nucleus, linked) == exported(linked, labeler)
    assert labels_on_nucleus(fake_nucleus, linked, "image_0") == {
        "clothing_type": "shirt", "attributes:striped": "False", "attributes:logo": "True", "attributes:hood": "True",
    }
    # image_1 is still waiting in the queue for its answer: it claims nothing about "hood".
    assert "attributes:hood" not in labels_on_nucleus(fake_nucleus, linked, "image_1")
    assert Task.objects.get(item=items[1]).state == Task.State.OPEN


def pending_payloads(annotation):
    fresh = (
        CategoryAnnotation.objects.select_related("item", "scene", "taxonomy", "label")
        .prefetch_related("labels", "taxonomy__labels")
        .get(pk=annotation.pk)
    )
    return annotation_payloads(fresh)
