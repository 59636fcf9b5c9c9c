"""Several syncs of one dataset at once (two workers, a sweep and a `manage.py sync_nucleus`) never
send one annotation in two batches. Each sync runs in its own thread with its own database
connection, on whichever database the suite runs on (PostgreSQL and SQLite)."""

import uuid

import pytest
from django.utils import timezone

from labeling.models import CategoryAnnotation, Dataset, DatasetMember
from labeling.services import sync as sync_service
from labeling.services.annotations_import import annotations_import
from labeling.services.items import items_import
from labeling.services.sync import dataset_sync
from tests.concurrency import all_at_once

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def pending(linked, clothing_type, fake_nucleus, nucleus_settings):
    """120 finished annotations waiting, stored with the sync switched off (in eager mode each
    commit would otherwise sync them at once)."""
    key, nucleus_settings.NUCLEUS_API_KEY = nucleus_settings.NUCLEUS_API_KEY, ""
    rows = [{"reference_id": f"image_{n}", "image_url": f"https://a.test/{n}.jpg"} for n in range(120)]
    items_import(dataset=linked, rows=rows)
    fake_nucleus.add_items(linked.nucleus_dataset_id, rows)
    answers = [{"reference_id": row["reference_id"], "taxonomy_name": "clothing_type", "label": "shirt"} for row in rows]
    annotations_import(dataset=linked, rows=answers, annotator=None, role=DatasetMember.Role.ADMIN)
    nucleus_settings.NUCLEUS_API_KEY = key
    return linked


def test_concurrent_claims_take_disjoint_batches(pending):
    now = timezone.now()

    claim = lambda: sync_service._claim(  # noqa: E731
        dataset_id=pending.id, nucleus_dataset_id=pending.nucleus_dataset_id, token=uuid.uuid4().hex, limit=15, now=now, due_before=now
    )
    batches = all_at_once([claim] * 10)

    claimed = [annotation_id for batch in batches for annotation_id in batch]
    assert len(claimed) == len(set(claimed)) == 120
    assert CategoryAnnotation.objects.filter(sync_claim__isnull=True).count() == 0


def test_four_syncs_at_once_send_each_annotation_in_exactly_one_batch(pending, fake_nucleus, nucleus_settings):
    nucleus_settings.NUCLEUS_BATCH_SIZE = 7
    fake_nucleus.latency = 0.005  # each send takes a moment, so the syncs overlap

    reports = all_at_once([lambda: dataset_sync(dataset=Dataset.objects.get(pk=pending.id))] * 4)

    sent = [(payload["reference_id"], payload["taxonomy_name"]) for request in fake_nucleus.requests_to("annotate") for payload in request.json["annotations"]]
    assert len(sent) == len(set(sent)) == 120
    assert sum(report.synced for report in reports) == 120
    assert sum(1 for report in reports if report.batches) >= 2, "the syncs did not overlap"
    assert set(CategoryAnnotation.objects.values_list("sync_state", "sync_claim")) == {("synced", None)}
    assert len(fake_nucleus.annotations(pending.nucleus_dataset_id)) == 120
