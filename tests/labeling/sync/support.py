"""Helpers shared by the sync tests."""

import socket

from labeling.services.annotations import annotation_save
from labeling.services.sync import dataset_sync


def finish(target, taxonomy, *names, annotator=None, metadata=None):
    """A finished answer, saved through the labeling service as a labeler's submit would."""
    labels = [taxonomy.labels.get(name=name) for name in names]
    return annotation_save(target=target, taxonomy=taxonomy, labels=labels, annotator=annotator, finished=True, metadata=metadata).annotation


def sync(dataset, **options):
    dataset.refresh_from_db()
    return dataset_sync(dataset=dataset, **options)


def closed_port() -> int:
    """A local TCP port nothing listens on (it was free a moment ago)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
