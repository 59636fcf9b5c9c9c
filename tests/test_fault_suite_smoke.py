"""The fault suite in small (bench/fault_suite.py is the long one): labelers submitting through the
API while the broker is unreachable, Nucleus answering 503 and 429, and a worker killed mid-request;
afterwards every annotation is on the fake Nucleus once, with its latest label.

tests/labeling/sync/test_worker.py covers one worker syncing one annotation, and a kill with a relabel
during the claim; this test covers them together, driven by API submits. Skipped without
TEST_REDIS_URL, like the other tests with a real worker."""

import os
import signal
import subprocess
import time
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.authtoken.models import Token

from labeling.models import CategoryAnnotation
from labeling.services.items import items_import
from labeling.services.sync import sync_sweep
from tests.labeling.sync.conftest import clothing_type, linked, nucleus_settings, publish_to  # noqa: F401  (fixtures)
from tests.labeling.sync.support import closed_port
from tests.labeling.sync.test_worker import Worker, broker_url, queue, wait_for  # noqa: F401  (fixtures)

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not os.environ.get("TEST_REDIS_URL"), reason="TEST_REDIS_URL is not set: no Redis for a real worker"),
]
HELD_SECONDS = 5  # how long the fake holds the request the worker is killed in (then writes it)
ITEMS = 24


def start_worker(*, queue: str, broker_url: str, fake, log) -> subprocess.Popen:
    """A worker as test_worker's, with backoff short enough to retry within the test. Its request
    timeout and claim are long: the test kills it mid-request and ends the claim itself."""
    return Worker(
        queue=queue, broker_url=broker_url, fake=fake, log=log, NUCLEUS_TIMEOUT_SECONDS=str(HELD_SECONDS * 2),
        NUCLEUS_SYNC_CLAIM_SECONDS=str(HELD_SECONDS * 4),
        NUCLEUS_SYNC_BACKOFF_BASE_SECONDS="1", NUCLEUS_SYNC_BACKOFF_MAX_SECONDS="1", NUCLEUS_SYNC_MAX_ATTEMPTS="50",
    ).process


@pytest.fixture
def workers():
    started: list[subprocess.Popen] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def test_api_submits_arrive_once_with_their_latest_label_through_broker_nucleus_and_worker_faults(
    linked, clothing_type, labeler, fake_nucleus, queue, broker_url, publish_to, workers, tmp_path  # noqa: F811
):
    items_import(dataset=linked, rows=[{"reference_id": f"image_{n}", "image_url": f"https://images.example.com/{n}.jpg"} for n in range(ITEMS)])
    fake_nucleus.add_items(linked.nucleus_dataset_id, [{"reference_id": f"image_{n}", "image_url": f"https://images.example.com/{n}.jpg"} for n in range(ITEMS)])
    client = Client(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=labeler).key}")
    base = f"/api/v1/datasets/{linked.id}"
    sent: dict[str, str] = {}  # reference_id -> the label of its last 200 submit

    def submit(reference_id: str, label: str) -> None:
        body = {"reference_id": reference_id, "annotations": [{"taxonomy_name": "clothing_type", "label": label}]}
        response = client.post(f"{base}/submit/", body, content_type="application/json")
        assert response.status_code == 200, response.content
        sent[reference_id] = label

    def label_next(count: int) -> None:
        for n in range(count):
            response = client.post(f"{base}/next/")
            assert response.status_code == 200, response.content
            submit(response.json()["reference_id"], ["shirt", "pants", "dress"][n % 3])

    fake_nucleus.fail_for(2, status=503)  # every route, the taxonomy's creation included
    fake_nucleus.fail_next(429, times=1, route="annotate", retry_after=1)
    workers.append(start_worker(queue=queue, broker_url=broker_url, fake=fake_nucleus, log=tmp_path / "worker0.log"))
    label_next(10)  # each commit publishes a sync: these meet the 503s, then the 429

    publish_to(f"redis://127.0.0.1:{closed_port()}/0", queue)  # the broker is unreachable: submits must not notice
    took = []
    for _ in range(6):
        started = time.monotonic()
        label_next(1)
        took.append(time.monotonic() - started)
    # The closed port refuses at once, so only retries could hold a request: a publish that
    # retried (kombu's default policy) would hold each of these 6 s.
    assert max(took) < 5, took
    publish_to(broker_url, queue)

    def throttled() -> bool:
        sync_sweep()  # what celery beat does every NUCLEUS_SYNC_SWEEP_SECONDS, once the 503 window is over
        return CategoryAnnotation.objects.filter(sync_error__contains="HTTP 429").exists()

    wait_for(throttled, timeout=15, what="the 429 to be answered")
    before = len(fake_nucleus.requests_to("annotate"))
    fake_nucleus.slow_next(HELD_SECONDS, route="annotate")  # the worker will be waiting for this answer when killed
    # The Retry-After passes when the test says so (the clock is moved in the database, not waited for).
    CategoryAnnotation.objects.filter(sync_next_attempt_at__gt=timezone.now()).update(sync_next_attempt_at=timezone.now())
    sync_sweep()  # or a sync the earlier sweeps left in the queue takes them first: either starts the send
    wait_for(lambda: len(fake_nucleus.requests_to("annotate")) > before, timeout=15, what="a request to hold")
    workers[0].send_signal(signal.SIGKILL)
    workers[0].wait(timeout=10)
    dead_claim = CategoryAnnotation.objects.filter(sync_claim__isnull=False)
    assert dead_claim.exists()  # it died holding a batch
    # The killed request still lands (the fake writes it after HELD_SECONDS); only then does the
    # dead worker's claim run out, as NUCLEUS_SYNC_CLAIM_SECONDS > NUCLEUS_TIMEOUT_SECONDS ensures.
    held = list(dead_claim.values_list("item__reference_id", "taxonomy__taxonomy_name", "label__name"))
    landed = lambda: all(  # noqa: E731
        fake_nucleus.labels(linked.nucleus_dataset_id).get((reference_id, taxonomy_name)) == label
        for reference_id, taxonomy_name, label in held
    )
    wait_for(landed, timeout=HELD_SECONDS + 15, what="the killed request to land")
    dead_claim.update(sync_claimed_until=timezone.now() - timedelta(seconds=1))
    label_next(ITEMS - 16)
    for reference_id in ("image_0", "image_5", "image_12"):  # the labeler goes back and changes three answers
        submit(reference_id, "dress" if sent[reference_id] != "dress" else "shirt")
    workers.append(start_worker(queue=queue, broker_url=broker_url, fake=fake_nucleus, log=tmp_path / "worker1.log"))

    def drained() -> bool:
        if CategoryAnnotation.objects.exclude(sync_state="synced").exists():
            sync_sweep()  # the dead worker's batch and the backoffs that run out: the sweep brings them back
            return False
        return True

    wait_for(drained, timeout=25, what="every annotation to be synced\n" + (tmp_path / "worker1.log").read_text(errors="replace"))
    assert len(sent) == ITEMS
    assert fake_nucleus.labels(linked.nucleus_dataset_id) == {(ref, "clothing_type"): label for ref, label in sent.items()}
    rows = CategoryAnnotation.objects.values_list("item__reference_id", "label__name", "version", "synced_version")
    assert {ref: label for ref, label, _, _ in rows} == sent
    assert all(version == synced for _, _, version, synced in rows)
    assert sorted(version for *_, version, _ in rows)[-3:] == [2, 2, 2]
    annotate = fake_nucleus.requests_to("annotate")
    assert len(annotate) >= 3  # the 429, the killed request, and the ones that went through
