"""Scale-out: two real Celery worker processes on one Redis, syncing the same dataset at once, never
send an annotation in two batches (each batch is claimed with a compare-and-set, see
`labeling.services.sync`). The in-process version with four threads is test_concurrency.py's
`test_four_syncs_at_once_send_each_annotation_in_exactly_one_batch`; here each worker is its own
process with its own database connection, as on two machines.

Skipped without TEST_REDIS_URL, like test_worker.py, whose worker helpers this reuses."""

import ast
import re

import pytest

from labeling.models import CategoryAnnotation, DatasetMember
from labeling.services.annotations_import import annotations_import
from labeling.tasks import sync_dataset
from tests.factories import ItemFactory
from tests.labeling.sync import test_worker
from tests.labeling.sync.test_worker import broker_url, queue, start_worker, wait_for  # noqa: F401 (fixtures)

pytestmark = test_worker.pytestmark
ITEMS = 120
BATCH_SIZE = 7


@pytest.fixture
def small_batches(monkeypatch):
    """Workers started by test_worker.Worker send BATCH_SIZE payloads a request (it passes on every
    variable that is not a settings variable; NUCLEUS_BATCH_SIZE is let through here)."""
    everything = test_worker.settings_variables()
    monkeypatch.setattr(test_worker, "settings_variables", lambda: everything - {"NUCLEUS_BATCH_SIZE"})
    monkeypatch.setenv("NUCLEUS_BATCH_SIZE", str(BATCH_SIZE))


def synced_by(worker) -> int:
    """How many annotations this worker's sync tasks reported synced (from its log)."""
    results = re.findall(r"Task labeling\.sync_dataset\[[^\]]+\] succeeded in [0-9.]+s: (\{.*\})", worker.output())
    return sum(ast.literal_eval(result)["synced"] for result in results)


def test_two_workers_syncing_one_dataset_send_each_annotation_in_exactly_one_batch(
    linked, clothing_type, fake_nucleus, small_batches, start_worker, settings  # noqa: F811
):
    settings.NUCLEUS_SYNC_GATHER_SECONDS = 0  # both syncs start at once, so they compete for batches
    made = [ItemFactory(dataset=linked, reference_id=f"image_{n}") for n in range(ITEMS)]
    fake_nucleus.add_items(linked.nucleus_dataset_id, [{"reference_id": i.reference_id, "image_url": i.image_url} for i in made])
    fake_nucleus.set_latency(0.05)  # each send takes a moment, so the two workers' batches interleave
    workers = [start_worker(), start_worker()]

    rows = [{"reference_id": item.reference_id, "taxonomy_name": "clothing_type", "label": "shirt"} for item in made]
    annotations_import(dataset=linked, rows=rows, annotator=None, role=DatasetMember.Role.ADMIN)  # commits, then publishes one sync
    sync_dataset.delay(linked.id)  # and a second one, as the sweep or "Sync now" would

    wait_for(
        lambda: CategoryAnnotation.objects.filter(sync_state="synced").count() == ITEMS,
        timeout=60,
        what="the sync\n" + "\n".join(worker.output() for worker in workers),
    )
    wait_for(lambda: sum(map(synced_by, workers)) == ITEMS, timeout=10, what="the two tasks' results in the logs")
    sent = [(payload["reference_id"], payload["taxonomy_name"]) for request in fake_nucleus.requests_to("annotate") for payload in request.json["annotations"]]
    assert len(sent) == len(set(sent)) == ITEMS
    assert all(len(request.json["annotations"]) <= BATCH_SIZE for request in fake_nucleus.requests_to("annotate"))
    split = [synced_by(worker) for worker in workers]
    print(f"annotations synced by each worker: {split}")
    assert min(split) > 0, f"the two workers did not both send batches: {split}"
    assert set(CategoryAnnotation.objects.values_list("sync_state", "sync_claim")) == {("synced", None)}
