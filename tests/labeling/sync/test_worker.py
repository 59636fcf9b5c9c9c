"""A real Celery worker process on the real Redis broker, syncing to the fake Nucleus over HTTP.

Skipped without TEST_REDIS_URL (scripts/test.sh exports it when Redis answers). The worker gets this
test's database (the committed rows of a transactional test), a Redis database number of its own
and a queue name of its own, so that concurrent test runs cannot take each other's messages."""

import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import pytest
import redis
from django.db import connection
from django.utils import timezone

from labeling.models import CategoryAnnotation, DatasetMember
from labeling.services.annotations_import import annotations_import
from labeling.services.sync import sync_sweep
from tests.factories import ItemFactory
from tests.labeling.sync.support import finish
from tests.test_project import PROJECT_ROOT, settings_variables

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not os.environ.get("TEST_REDIS_URL"), reason="TEST_REDIS_URL is not set: no Redis for a real worker"),
]
CLAIM_SECONDS = 3
BROKER_DB = 14  # not TEST_REDIS_URL's own: other broker tests may use that one


@pytest.fixture
def broker_url() -> str:
    split = urlsplit(os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15"))
    return urlunsplit((split.scheme, split.netloc, f"/{BROKER_DB}", "", ""))


@pytest.fixture
def queue(broker_url, publish_to):
    """A queue of this test's own, that this process publishes to; its keys are removed afterwards."""
    name = f"sync-test-{uuid.uuid4().hex[:12]}"
    publish_to(broker_url, name)
    yield name
    client = redis.Redis.from_url(broker_url)
    for key in client.scan_iter(f"*{name}*"):
        client.delete(key)


def database_env() -> dict[str, str]:
    """The settings that point a process at this test's database."""
    settings = connection.settings_dict
    if connection.vendor == "sqlite":
        return {"SQLITE_PATH": str(settings["NAME"])}
    credentials = quote(settings["USER"] or "", safe="") + (f":{quote(settings['PASSWORD'], safe='')}" if settings["PASSWORD"] else "")
    return {"DATABASE_URL": f"postgres://{credentials}@{settings['HOST'] or '127.0.0.1'}:{settings['PORT'] or 5432}/{settings['NAME']}"}


class Worker:
    """`celery -A config worker` in its own process, one task at a time, on one queue."""

    def __init__(self, *, queue: str, broker_url: str, fake, log: Path, **settings_env: str):
        ignored = settings_variables()
        env = {name: value for name, value in os.environ.items() if name not in ignored}
        env.update(
            DJANGO_SETTINGS_MODULE="config.settings",
            CELERY_BROKER_URL=broker_url,
            NUCLEUS_API_KEY=fake.api_key,
            NUCLEUS_ENDPOINT=fake.endpoint,
            NUCLEUS_TIMEOUT_SECONDS="2",
            NUCLEUS_SYNC_CLAIM_SECONDS=str(CLAIM_SECONDS),
            **database_env(),
        )
        env.update(settings_env)
        self.log = log
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool=solo", "-Q", queue, "-n", f"{queue}-{log.stem}@%h",
             "--without-heartbeat", "--without-gossip", "--without-mingle", "--loglevel=INFO"],
            cwd=PROJECT_ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
        )
        try:
            # Generous: a Celery start on a machine whose cores are busy took over 30 s.
            wait_for(lambda: " ready." in self.output() or self.process.poll() is not None, timeout=90, what="the worker to start")
        except AssertionError:
            self.kill()  # not left running: no fixture has it to stop
            raise
        assert self.process.poll() is None, self.output()

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def start_worker(queue, broker_url, fake_nucleus, tmp_path):
    workers: list[Worker] = []

    def start() -> Worker:
        workers.append(Worker(queue=queue, broker_url=broker_url, fake=fake_nucleus, log=tmp_path / f"worker{len(workers)}.log"))
        return workers[-1]

    yield start
    for worker in workers:
        worker.stop()


def wait_for(condition, *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"Timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def test_a_submitted_annotation_is_synced_by_a_worker(linked, items, clothing_type, fake_nucleus, start_worker):
    worker = start_worker()

    annotation = finish(items[0], clothing_type, "pants")  # commits, then publishes the sync

    wait_for(lambda: fake_nucleus.labels(linked.nucleus_dataset_id), timeout=20, what=f"the sync\n{worker.output()}")
    assert fake_nucleus.labels(linked.nucleus_dataset_id) == {("image_0", "clothing_type"): "pants"}
    wait_for(lambda: CategoryAnnotation.objects.get(pk=annotation.pk).sync_state == "synced", timeout=10, what="the reconcile")


def test_a_batch_of_a_worker_killed_mid_request_is_sent_again_after_its_claim_expires(
    linked, clothing_type, fake_nucleus, start_worker
):
    made = [ItemFactory(dataset=linked, reference_id=f"image_{n}") for n in range(6)]
    fake_nucleus.add_items(linked.nucleus_dataset_id, [{"reference_id": i.reference_id, "image_url": i.image_url} for i in made])
    fake_nucleus.slow_next(1.5, route="annotate")  # the worker will be waiting for this answer
    first = start_worker()
    rows = [{"reference_id": item.reference_id, "taxonomy_name": "clothing_type", "label": "shirt"} for item in made]
    annotations_import(dataset=linked, rows=rows, annotator=None, role=DatasetMember.Role.ADMIN)

    wait_for(lambda: fake_nucleus.requests_to("annotate"), timeout=20, what=f"the first send\n{first.output()}")
    first.kill()
    held = CategoryAnnotation.objects.filter(sync_state="pending", sync_claim__isnull=False)
    assert held.count() == 6
    # The claim's lease is moved in the database, not waited for: it holds while the new worker
    # runs, then runs out when this test says so, however slow the machine is.
    held.update(sync_claimed_until=timezone.now() + timedelta(hours=1))
    finish(made[2], clothing_type, "dress")  # a labeler changes one while its batch is in limbo (and publishes a sync)

    second = start_worker()
    wait_for(lambda: "] succeeded in " in second.output(), timeout=30, what=f"the relabel's sync\n{second.output()}")
    assert len(fake_nucleus.requests_to("annotate")) == 1  # a batch under an unexpired claim is not sent again
    assert sync_sweep() == []
    held.update(sync_claimed_until=timezone.now() - timedelta(seconds=1))  # the dead worker's claim runs out
    assert sync_sweep() == [linked.id]  # what celery beat runs every NUCLEUS_SYNC_SWEEP_SECONDS; the worker is idle

    wait_for(lambda: CategoryAnnotation.objects.filter(sync_state="synced").count() == 6, timeout=20, what="the second send")
    expected = {(item.reference_id, "clothing_type"): "shirt" for item in made} | {("image_2", "clothing_type"): "dress"}
    assert fake_nucleus.labels(linked.nucleus_dataset_id) == expected
    first_send, *later = fake_nucleus.requests_to("annotate")
    assert len(first_send.json["annotations"]) == 6
    assert sorted(payload["reference_id"] for request in later for payload in request.json["annotations"]) == [item.reference_id for item in made]
    assert set(CategoryAnnotation.objects.values_list("synced_version", "version")) <= {(1, 1), (2, 2)}
