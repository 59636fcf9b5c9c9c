"""Faults: what Nucleus (or the network) does wrong, and what the outbox says afterwards."""

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from labeling.models import CategoryAnnotation
from labeling.nucleus import retry_after_seconds
from labeling.services import sync as sync_service
from taxonomies.services import taxonomy_create
from tests.factories import ItemFactory
from tests.labeling.sync.support import finish, sync

pytestmark = pytest.mark.django_db
State = CategoryAnnotation.SyncState


@pytest.fixture
def annotation(items, clothing_type):
    return finish(items[0], clothing_type, "shirt")


@pytest.fixture
def highest_jitter(monkeypatch):
    """The delay is drawn in [ceiling / 2, ceiling]; pin it to the ceiling to see the exponent."""
    monkeypatch.setattr(sync_service.random, "uniform", lambda low, high: high)


def state_of(annotation) -> tuple:
    annotation.refresh_from_db()
    return annotation.sync_state, annotation.sync_attempts


def waited(annotation, before, after) -> tuple[float, float]:
    """The delay the sync scheduled, in seconds, as bounds: it read the clock between `before` and
    `after` (a slow machine widens them; it cannot make a right delay look wrong)."""
    annotation.refresh_from_db()
    return (annotation.sync_next_attempt_at - after).total_seconds(), (annotation.sync_next_attempt_at - before).total_seconds()


def fits(bounds: list[tuple[float, float]], delays: list[float]) -> bool:
    return len(bounds) == len(delays) and all(low <= delay <= high for (low, high), delay in zip(bounds, delays))


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_a_transient_status_schedules_a_retry_with_backoff(linked, annotation, fake_nucleus, status, highest_jitter):
    fake_nucleus.fail_next(status=status, route="annotate")
    before = timezone.now()

    report = sync(linked)

    after = timezone.now()
    assert state_of(annotation) == (State.PENDING, 1)
    assert f"HTTP {status}" in annotation.sync_error
    assert annotation.sync_claim is None
    # BASE (10 s) for the first retry; the sync stopped instead of hammering a failing Nucleus.
    assert fits([waited(annotation, before, after)], [10])
    assert (report.retrying, report.synced) == (1, 0)
    # One attempt per sync: the SDK's own retries (which sleep up to 80 s in the worker) are bypassed.
    assert len(fake_nucleus.requests_to("annotate")) == 1


def test_retry_after_is_honoured_when_longer_than_the_backoff(linked, annotation, fake_nucleus):
    fake_nucleus.fail_next(status=429, route="annotate", retry_after=120)
    before = timezone.now()

    sync(linked)

    annotation.refresh_from_db()
    assert annotation.sync_next_attempt_at >= before + timedelta(seconds=120)
    assert annotation.sync_next_attempt_at <= timezone.now() + timedelta(seconds=121)


def test_retry_after_is_read_as_seconds_or_as_an_http_date():
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert retry_after_seconds("7") == 7
    assert retry_after_seconds("Thu, 01 Jan 2026 12:00:30 GMT", now=now) == 30
    assert retry_after_seconds("Thu, 01 Jan 2026 11:00:00 GMT", now=now) == 0
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None


def delays_after_four_503s(linked, annotation, fake_nucleus) -> list[tuple[float, float]]:
    delays = []
    for _ in range(4):
        fake_nucleus.fail_next(status=503, route="annotate")
        before = timezone.now()
        sync(linked, include_waiting=True)
        delays.append(waited(annotation, before, timezone.now()))
    return delays


def test_the_delay_doubles_with_each_attempt_up_to_the_maximum(linked, annotation, fake_nucleus, nucleus_settings, highest_jitter):
    nucleus_settings.NUCLEUS_SYNC_BACKOFF_MAX_SECONDS = 30
    delays = delays_after_four_503s(linked, annotation, fake_nucleus)
    assert fits(delays, [10, 20, 30, 30]), delays


def test_the_delay_is_never_under_half_the_backoff(linked, annotation, fake_nucleus, nucleus_settings, monkeypatch):
    # Equal jitter: an outage shorter than half the nominal backoff never ends with annotations failed.
    monkeypatch.setattr(sync_service.random, "uniform", lambda low, high: low)
    nucleus_settings.NUCLEUS_SYNC_BACKOFF_MAX_SECONDS = 30
    delays = delays_after_four_503s(linked, annotation, fake_nucleus)
    assert fits(delays, [5, 10, 15, 15]), delays


def test_a_fresh_answer_batched_with_a_much_retried_one_waits_its_own_first_delay(
    linked, items, clothing_type, fake_nucleus, highest_jitter
):
    retried = finish(items[0], clothing_type, "shirt")
    CategoryAnnotation.objects.filter(pk=retried.pk).update(sync_attempts=7)  # six 503s behind it
    fresh = finish(items[1], clothing_type, "pants")
    fake_nucleus.fail_next(status=503, route="annotate")
    before = timezone.now()

    sync(linked)

    after = timezone.now()
    assert len(fake_nucleus.requests_to("annotate")) == 1  # one batch
    waits = [waited(annotation, before, after) for annotation in (retried, fresh)]
    assert fits(waits, [1280, 10]), waits


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param(lambda fake: fake.slow_next(1.0, route="annotate"), id="timeout"),
        pytest.param(lambda fake: fake.drop_next(route="annotate"), id="dropped-connection"),
        pytest.param(lambda fake: fake.fail_next(status=503, route="add_taxonomy"), id="taxonomy-creation-503"),
    ],
)
def test_network_faults_schedule_a_retry(linked, annotation, fake_nucleus, nucleus_settings, fault):
    nucleus_settings.NUCLEUS_TIMEOUT_SECONDS = 0.3
    fault(fake_nucleus)

    sync(linked)

    assert state_of(annotation) == (State.PENDING, 1)
    assert annotation.sync_next_attempt_at is not None
    assert annotation.sync_error


def test_after_the_last_attempt_the_annotation_is_failed_with_the_message(linked, annotation, fake_nucleus, nucleus_settings):
    nucleus_settings.NUCLEUS_SYNC_MAX_ATTEMPTS = 3
    fake_nucleus.fail_for(60, status=502, route="annotate")

    for _ in range(5):  # more runs than attempts: a failed annotation is not sent again
        sync(linked, include_waiting=True)

    assert state_of(annotation) == (State.FAILED, 3)
    assert "HTTP 502" in annotation.sync_error
    assert len(fake_nucleus.requests_to("annotate")) == 3


def test_a_retry_that_succeeds_clears_the_error_and_the_attempts(linked, annotation, fake_nucleus):
    fake_nucleus.fail_next(status=500, route="annotate")
    sync(linked)

    sync(linked, include_waiting=True)

    assert state_of(annotation) == (State.SYNCED, 0)
    assert (annotation.sync_error, annotation.sync_next_attempt_at) == ("", None)


def test_a_retry_is_not_sent_before_it_is_due(linked, annotation, fake_nucleus):
    fake_nucleus.fail_next(status=500, route="annotate")
    sync(linked)

    report = sync(linked)

    assert report.batches == 0
    assert len(fake_nucleus.requests_to("annotate")) == 1


@pytest.mark.parametrize(
    ("spoil", "expected"),
    [
        pytest.param(lambda s: setattr(s, "NUCLEUS_API_KEY", "wrong-key"), "HTTP 401", id="401-wrong-key"),
        pytest.param(None, "HTTP 404", id="404-dataset-gone"),
    ],
)
def test_a_refusal_fails_the_batch_at_once_with_nucleus_s_message(linked, annotation, fake_nucleus, nucleus_settings, spoil, expected):
    if spoil:
        spoil(nucleus_settings)
    else:
        linked.nucleus_dataset_id = "ds_gone"
        linked.save()

    report = sync(linked)

    assert state_of(annotation) == (State.FAILED, 1)
    assert expected in annotation.sync_error
    assert report.failed == 1


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_a_refused_annotate_request_fails_its_batch_and_is_not_taken_for_synced(linked, items, clothing_type, fake_nucleus, status):
    known = finish(items[0], clothing_type, "shirt")
    sync(linked)  # clothing_type is on Nucleus now: the refusal below answers the annotate request itself
    annotation = finish(items[1], clothing_type, "pants")
    fake_nucleus.fail_next(status=status, route="annotate", body={"error": "annotations refused"})

    report = sync(linked)

    assert [request.route for request in fake_nucleus.requests[-1:]] == ["annotate"]
    assert (report.synced, report.failed, report.retrying) == (0, 1, 0)
    assert state_of(annotation) == (State.FAILED, 1)
    assert (annotation.synced_version, annotation.sync_next_attempt_at, annotation.sync_claim) == (0, None, None)
    assert f"HTTP {status}" in annotation.sync_error and "annotations refused" in annotation.sync_error
    assert ("image_1", "clothing_type") not in fake_nucleus.labels(linked.nucleus_dataset_id)
    assert sync(linked, include_waiting=True).batches == 0  # failed: sent again only when a person asks
    assert state_of(known) == (State.SYNCED, 0)


def test_a_refused_taxonomy_fails_only_its_own_annotations_and_the_batch_goes(linked, items, clothing_type, attributes, fake_nucleus):
    shirt = finish(items[0], clothing_type, "shirt")
    logo = finish(items[1], attributes, "logo")
    fake_nucleus.fail_next(status=400, route="add_taxonomy")  # the first taxonomy created: clothing_type

    report = sync(linked)

    assert state_of(shirt) == (State.FAILED, 1)
    assert shirt.sync_error.startswith("Nucleus answered HTTP 400")
    assert state_of(logo) == (State.SYNCED, 0)
    assert fake_nucleus.labels(linked.nucleus_dataset_id) == {
        ("image_1", "attributes:striped"): "False", ("image_1", "attributes:logo"): "True",
    }
    assert (report.annotations, report.synced, report.failed) == (2, 1, 1)


def test_an_annotation_nucleus_rejects_in_a_200_answer_is_failed_and_the_others_synced(linked, items, clothing_type, fake_nucleus):
    unknown_there = ItemFactory(dataset=linked, reference_id="image_1x")  # never uploaded to Nucleus
    rejected = finish(unknown_there, clothing_type, "dress")
    accepted = [finish(item, clothing_type, "shirt") for item in items]

    report = sync(linked)

    assert state_of(rejected) == (State.FAILED, 1)
    assert rejected.sync_error == (
        f"Item with reference_id 'image_1x' does not exist in dataset {linked.nucleus_dataset_id} "
        "(reference_id 'image_1x', taxonomy_name 'clothing_type')"
    )
    assert {state_of(annotation) for annotation in accepted} == {(State.SYNCED, 0)}
    assert (report.synced, report.failed) == (3, 1)


def test_errors_that_name_no_annotation_leave_the_batch_to_be_retried_not_synced(linked, annotation, fake_nucleus, nucleus_settings):
    """Nucleus said one of two failed without saying which: neither can be called synced."""
    nucleus_settings.NUCLEUS_SYNC_MAX_ATTEMPTS = 2
    other = finish(ItemFactory(dataset=linked, reference_id="image_9"), annotation.taxonomy, "pants")
    answer = {"dataset_id": linked.nucleus_dataset_id, "annotations_processed": 1, "annotations_ignored": 0, "errors": ["Internal hiccup"]}
    fake_nucleus.fail_next(status=200, route="annotate", body=answer, times=2)

    sync(linked)
    assert {state_of(a) for a in (annotation, other)} == {(State.PENDING, 1)}
    assert "Nucleus processed 1 and ignored 0 of 2 annotations without saying which failed: Internal hiccup" == annotation.sync_error

    sync(linked, include_waiting=True)
    assert {state_of(a) for a in (annotation, other)} == {(State.FAILED, 2)}


def test_counts_short_of_the_batch_without_errors_are_not_taken_as_success(linked, annotation, fake_nucleus):
    fake_nucleus.fail_next(status=200, route="annotate", body={"dataset_id": linked.nucleus_dataset_id, "annotations_processed": 0})

    sync(linked)

    assert state_of(annotation) == (State.PENDING, 1)


def test_an_error_about_image_1_is_not_taken_for_image_10(linked, clothing_type, fake_nucleus):
    image_1 = finish(ItemFactory(dataset=linked, reference_id="image_1"), clothing_type, "shirt")
    image_10 = finish(ItemFactory(dataset=linked, reference_id="image_10"), clothing_type, "shirt")
    fake_nucleus.add_items(linked.nucleus_dataset_id, [{"reference_id": "image_10", "image_url": "https://a.test/10.jpg"}])

    sync(linked)

    assert state_of(image_1)[0] == State.FAILED
    assert state_of(image_10)[0] == State.SYNCED


@pytest.mark.parametrize(
    "error",
    [
        'Label "navy" is not allowed (reference_id "image_1", taxonomy_name "shirt color")',
        "Input validation failed: Label 'navy' is not in taxonomy shirt color (reference_id 'image_1', taxonomy_name 'shirt color')",
    ],
    ids=["double-quoted", "unquoted-then-quoted"],
)
def test_an_error_about_shirt_color_is_not_taken_for_shirt(linked, items, fake_nucleus, error):
    """Taxonomy names may hold spaces: `shirt` inside `shirt color` does not name it."""
    shirt = taxonomy_create(dataset=linked, taxonomy_name="shirt", labels=["tee", "polo"])
    shirt_color = taxonomy_create(dataset=linked, taxonomy_name="shirt color", labels=["navy", "white"])
    on_shirt = finish(items[1], shirt, "tee")
    on_shirt_color = finish(items[1], shirt_color, "navy")
    answer = {"dataset_id": linked.nucleus_dataset_id, "annotations_processed": 1, "annotations_ignored": 0, "errors": [error]}
    fake_nucleus.fail_next(status=200, route="annotate", body=answer)

    sync(linked)

    assert state_of(on_shirt_color) == (State.FAILED, 1)
    assert state_of(on_shirt) == (State.SYNCED, 0)


def test_an_annotation_whose_payloads_cannot_be_built_is_failed_and_the_rest_of_its_batch_sent(linked, items, clothing_type, fake_nucleus, monkeypatch):
    broken = finish(items[0], clothing_type, "shirt")
    fine = finish(items[1], clothing_type, "pants")
    real_build = sync_service.nucleus.annotation_payloads

    def build(annotation):
        if annotation.id == broken.id:
            raise ValueError("metadata is not JSON")
        return real_build(annotation)

    monkeypatch.setattr(sync_service.nucleus, "annotation_payloads", build)

    sync(linked)
    report = sync(linked)  # not claimed again

    assert state_of(broken) == (State.FAILED, 1)
    assert broken.sync_error == "Could not build the Nucleus annotation: ValueError: metadata is not JSON"
    assert state_of(fine) == (State.SYNCED, 0)
    assert report.batches == 0
