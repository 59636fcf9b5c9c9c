"""The outbox around the sync: what blocks it, how it is enqueued after commit, the sweep, the
failed-annotation controls, and the guarantees a broken broker must not break."""

import logging
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from labeling.models import CategoryAnnotation, DatasetMember
from labeling.services import sync as sync_service
from labeling.services.annotations import annotation_save
from labeling.services.annotations_import import annotations_import
from labeling.services.items import item_create
from labeling.services.sync import (
    dataset_sync,
    sync_blocker,
    sync_counts,
    sync_failures,
    sync_retry_failed,
    sync_run,
    sync_sweep,
)
from labeling.tasks import sync_dataset
from taxonomies.services import label_update, taxonomy_create
from tests.factories import DatasetFactory, ItemFactory
from tests.labeling.sync.support import closed_port, finish, sync

pytestmark = pytest.mark.django_db
State = CategoryAnnotation.SyncState


@pytest.fixture
def enqueued(monkeypatch):
    """The dataset ids the sync was enqueued for, instead of running it."""
    calls = []
    monkeypatch.setattr(sync_service, "sync_enqueue", lambda *, dataset_id, include_waiting=False: calls.append(dataset_id) or True)
    return calls


class TestBlockers:
    def test_without_an_api_key_the_sync_sends_nothing_and_says_why(self, linked, items, clothing_type, fake_nucleus, settings):
        annotation = finish(items[0], clothing_type, "shirt")
        settings.NUCLEUS_API_KEY = ""

        report = sync(linked)

        assert report.blocked == "NUCLEUS_API_KEY is not set on the server: annotations wait as pending until it is."
        assert sync_blocker(dataset=linked) == report.blocked
        assert fake_nucleus.requests == []
        annotation.refresh_from_db()
        assert annotation.sync_state == State.PENDING

    def test_the_task_without_an_api_key_makes_no_query(self, linked, settings, django_assert_num_queries):
        settings.NUCLEUS_API_KEY = ""
        with django_assert_num_queries(0):
            assert sync_dataset.apply(args=[linked.id]).get()["blocked"].startswith("NUCLEUS_API_KEY is not set")

    def test_a_dataset_not_linked_to_nucleus_waits_and_says_so(self, dataset, nucleus_settings, fake_nucleus):
        item = ItemFactory(dataset=dataset)
        taxonomy = taxonomy_create(dataset=dataset, taxonomy_name="kind", labels=["a", "b"])
        annotation = finish(item, taxonomy, "a")

        report = dataset_sync(dataset=dataset)

        assert report.blocked == "This dataset is not linked to a Nucleus dataset (nucleus_dataset_id): annotations wait as pending."
        assert fake_nucleus.requests == []
        annotation.refresh_from_db()
        assert annotation.sync_state == State.PENDING

    def test_a_linked_dataset_with_a_key_has_no_blocker(self, linked):
        assert sync_blocker(dataset=linked) is None


class TestEnqueueAfterCommit:
    def test_a_finished_answer_enqueues_one_sync_of_its_dataset_after_the_commit(
        self, linked, items, clothing_type, attributes, fake_nucleus, django_capture_on_commit_callbacks
    ):
        with django_capture_on_commit_callbacks() as callbacks:
            finish(items[0], clothing_type, "shirt")
            finish(items[0], attributes, "logo")
            assert fake_nucleus.requests == []  # nothing before the commit

        assert len(callbacks) == 1
        callbacks[0]()  # eager mode: the sync runs right here, after the commit
        assert fake_nucleus.labels(linked.nucleus_dataset_id) == {
            ("image_0", "clothing_type"): "shirt", ("image_0", "attributes:striped"): "False", ("image_0", "attributes:logo"): "True",
        }

    def test_an_import_of_many_answers_enqueues_once(self, linked, items, clothing_type, django_capture_on_commit_callbacks, enqueued):
        rows = [{"reference_id": item.reference_id, "taxonomy_name": "clothing_type", "label": "pants"} for item in items]

        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            annotations_import(dataset=linked, rows=rows, annotator=None, role=DatasetMember.Role.ADMIN)

        assert (len(callbacks), enqueued) == (1, [linked.id])

    @pytest.mark.django_db(transaction=True)  # each answer commits, as each request does
    def test_with_a_broker_the_answers_of_a_moment_share_one_delayed_sync(
        self, linked, items, clothing_type, attributes, settings, monkeypatch
    ):
        settings.CELERY_TASK_ALWAYS_EAGER = False
        settings.NUCLEUS_SYNC_GATHER_SECONDS = 2
        published = []
        monkeypatch.setattr(
            sync_service, "sync_enqueue",
            lambda *, dataset_id, include_waiting=False, countdown=0: published.append((dataset_id, countdown)) or True,
        )
        monkeypatch.setattr(sync_service, "_sync_published_until", {})
        clock = [1000.0]
        monkeypatch.setattr(sync_service.time, "monotonic", lambda: clock[0])
        answers = [(items[0], clothing_type, "shirt"), (items[1], clothing_type, "pants"), (items[2], clothing_type, "shirt"), (items[0], attributes, "logo")]
        # Answers at 0, 0.5 and 0.9 s share the sync published at 0 (it starts at 2 s); the one at
        # 1.2 s is past half the wait, so it publishes another.
        for (item, taxonomy, label), at in zip(answers, (1000.0, 1000.5, 1000.9, 1001.2)):
            clock[0] = at
            finish(item, taxonomy, label)

        assert published == [(linked.id, 2), (linked.id, 2)]

    @pytest.mark.django_db(transaction=True)
    def test_without_a_gathering_wait_every_answer_publishes_at_once(self, linked, items, clothing_type, settings, monkeypatch):
        settings.CELERY_TASK_ALWAYS_EAGER = False
        settings.NUCLEUS_SYNC_GATHER_SECONDS = 0
        published = []
        monkeypatch.setattr(
            sync_service, "sync_enqueue",
            lambda *, dataset_id, include_waiting=False, countdown=0: published.append((dataset_id, countdown)) or True,
        )
        for item in items[:2]:
            finish(item, clothing_type, "shirt")
        assert published == [(linked.id, 0), (linked.id, 0)]

    def test_a_draft_enqueues_nothing(self, linked, items, clothing_type, django_capture_on_commit_callbacks):
        with django_capture_on_commit_callbacks() as callbacks:
            annotation_save(target=items[0], taxonomy=clothing_type, labels=[], annotator=None, finished=False)

        assert callbacks == []

    def test_in_eager_mode_without_an_api_key_nothing_is_registered(self, linked, items, clothing_type, settings, django_capture_on_commit_callbacks):
        settings.NUCLEUS_API_KEY = ""
        with django_capture_on_commit_callbacks() as callbacks:
            finish(items[0], clothing_type, "shirt")
        assert callbacks == []


@pytest.mark.django_db(transaction=True)
def test_a_submit_is_saved_when_the_broker_is_down(dataset, labeler, publish_to, caplog):
    """The commit happened; the publish fails after it. The request succeeds and the annotation
    waits in the outbox for the sweep."""
    taxonomy_create(dataset=dataset, taxonomy_name="clothing_type", labels=["shirt", "pants"])
    item_create(dataset=dataset, reference_id="image_0", image_url="https://images.example.com/0.jpg")
    publish_to(f"redis://127.0.0.1:{closed_port()}/0")
    client = APIClient()
    client.force_authenticate(labeler)
    assert client.post(f"/api/v1/datasets/{dataset.id}/next/").status_code == 200

    with caplog.at_level(logging.ERROR, logger="labeling.services.sync"):
        response = client.post(
            f"/api/v1/datasets/{dataset.id}/submit/",
            {"reference_id": "image_0", "annotations": [{"taxonomy_name": "clothing_type", "label": "pants"}]},
            format="json",
        )

    assert response.status_code == 200, response.content
    annotation = CategoryAnnotation.objects.get()
    assert (annotation.status, annotation.sync_state) == ("finished", State.PENDING)
    assert "Could not start the Nucleus sync of dataset" in caplog.text


def test_nan_metadata_is_refused_at_the_api_before_it_reaches_the_outbox(linked, labeler, items, clothing_type):
    client = APIClient()
    client.force_authenticate(labeler)
    body = '[{"reference_id": "image_0", "taxonomy_name": "clothing_type", "label": "shirt", "metadata": {"score": NaN}}]'

    response = client.post(f"/api/v1/datasets/{linked.id}/annotations/", body, content_type="application/json")

    assert response.status_code == 400
    assert "NaN or Infinity" in response.content.decode()
    assert not CategoryAnnotation.objects.exists()


class TestSweep:
    def test_it_enqueues_datasets_with_pending_annotations_that_are_due(self, linked, items, clothing_type, enqueued):
        finish(items[0], clothing_type, "shirt")
        synced_only = DatasetFactory(nucleus_dataset_id="ds_other")

        assert sync_sweep() == [linked.id]
        assert enqueued == [linked.id]
        assert synced_only.id not in enqueued

    def test_it_leaves_retries_that_are_not_due_and_batches_being_sent(self, linked, items, clothing_type, enqueued):
        waiting = finish(items[0], clothing_type, "shirt")
        held = finish(items[1], clothing_type, "shirt")
        later = timezone.now() + timedelta(minutes=5)
        CategoryAnnotation.objects.filter(pk=waiting.pk).update(sync_next_attempt_at=later)
        CategoryAnnotation.objects.filter(pk=held.pk).update(sync_claim="worker", sync_claimed_until=later)

        assert sync_sweep() == []

    def test_it_enqueues_a_batch_whose_worker_died(self, linked, items, clothing_type, enqueued):
        held = finish(items[0], clothing_type, "shirt")
        CategoryAnnotation.objects.filter(pk=held.pk).update(sync_claim="dead-worker", sync_claimed_until=timezone.now() - timedelta(seconds=1))

        assert sync_sweep() == [linked.id]

    def test_the_expired_batch_is_sent_again_by_the_next_sync(self, linked, items, clothing_type, fake_nucleus):
        held = finish(items[0], clothing_type, "shirt")
        CategoryAnnotation.objects.filter(pk=held.pk).update(sync_claim="dead-worker", sync_claimed_until=timezone.now() - timedelta(seconds=1))

        sync(linked)

        held.refresh_from_db()
        assert (held.sync_state, held.sync_claim) == (State.SYNCED, None)

    def test_it_enqueues_a_dataset_whose_taxonomy_must_be_rebuilt(self, linked, items, clothing_type, fake_nucleus, enqueued):
        finish(items[0], clothing_type, "shirt")
        sync(linked)
        assert sync_sweep() == []

        label_update(label=clothing_type.labels.get(name="shirt"), name="top", hotkey="", position=0)

        assert sync_sweep() == [linked.id]

    def test_without_an_api_key_it_makes_no_query(self, settings, django_assert_num_queries):
        settings.NUCLEUS_API_KEY = ""
        with django_assert_num_queries(0):
            assert sync_sweep() == []

    def test_it_takes_three_queries_whatever_the_number_of_datasets(self, linked, items, clothing_type, enqueued):
        for n in range(5):
            other = DatasetFactory(nucleus_dataset_id=f"ds_{n}x")
            finish(ItemFactory(dataset=other), taxonomy_create(dataset=other, taxonomy_name="t", labels=["a"]), "a")

        with CaptureQueriesContext(connection) as queries:
            assert len(sync_sweep()) == 5

        # datasets with due annotations; taxonomies Nucleus has; their labels (none here: skipped)
        assert len(queries) <= 3


class TestControls:
    def test_counts_per_state_include_every_state(self, linked, items, clothing_type, fake_nucleus):
        finish(items[0], clothing_type, "shirt")
        sync(linked)
        finish(items[1], clothing_type, "pants")

        assert sync_counts(dataset=linked) == {"not_ready": 0, "pending": 1, "synced": 1, "failed": 0}

    def test_failures_list_the_last_error_of_each_failed_annotation(self, linked, clothing_type, fake_nucleus):
        orphan = finish(ItemFactory(dataset=linked, reference_id="not_there"), clothing_type, "shirt")
        sync(linked)

        (failure,) = sync_failures(dataset=linked)

        assert (failure.annotation_id, failure.reference_id, failure.taxonomy_name, failure.attempts) == (orphan.id, "not_there", "clothing_type", 1)
        assert failure.error.startswith("Item with reference_id 'not_there' does not exist")

    @pytest.mark.django_db(transaction=True)
    def test_retry_failed_puts_them_back_in_the_outbox_and_syncs_them_after_the_commit(self, linked, clothing_type, fake_nucleus):
        # Committed for real: in eager mode each commit runs the sync right after it.
        orphan = finish(ItemFactory(dataset=linked, reference_id="late"), clothing_type, "shirt")
        orphan.refresh_from_db()
        assert orphan.sync_state == State.FAILED
        fake_nucleus.add_items(linked.nucleus_dataset_id, [{"reference_id": "late", "image_url": "https://a.test/late.jpg"}])

        assert sync_retry_failed(dataset=linked) == 1

        orphan.refresh_from_db()
        assert (orphan.sync_state, orphan.sync_attempts, orphan.sync_error) == (State.SYNCED, 0, "")

    def test_the_task_runs_the_sync_and_reports_it(self, linked, items, clothing_type, fake_nucleus):
        finish(items[0], clothing_type, "shirt")

        result = sync_dataset.apply(args=[linked.id]).get()

        assert (result["synced"], result["batches"], result["more"]) == (1, 1, False)

    def test_a_run_out_of_time_hands_the_rest_to_a_new_task(self, linked, items, clothing_type, fake_nucleus, enqueued):
        finish(items[0], clothing_type, "shirt")

        report = sync_run(dataset_id=linked.id, time_budget=0)

        assert (report.batches, report.more) == (0, True)
        assert enqueued == [linked.id]

    def test_a_dataset_that_is_gone_is_not_an_error(self, nucleus_settings):
        assert sync_run(dataset_id=987654).blocked == "Dataset 987654 does not exist."

