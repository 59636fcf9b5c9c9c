"""The sync's cast: a fake Nucleus (tests/fake_nucleus.py) that the real SDK talks to, the dataset
linked to a dataset on it with its items, and the settings pointing there."""

import pytest

from taxonomies.services import taxonomy_create
from tests.factories import ItemFactory


@pytest.fixture
def nucleus_settings(settings, fake_nucleus):
    settings.NUCLEUS_API_KEY = fake_nucleus.api_key
    settings.NUCLEUS_ENDPOINT = fake_nucleus.endpoint
    settings.NUCLEUS_TIMEOUT_SECONDS = 2
    settings.NUCLEUS_BATCH_SIZE = 5000
    return settings


@pytest.fixture
def linked(dataset, fake_nucleus, nucleus_settings):
    """The cast's dataset, linked to a fresh dataset on the fake."""
    dataset.nucleus_dataset_id = fake_nucleus.create_dataset(name=dataset.name)
    dataset.save(update_fields=["nucleus_dataset_id"])
    return dataset


@pytest.fixture
def items(linked, fake_nucleus):
    """Three images, here and on the fake."""
    made = [ItemFactory(dataset=linked, reference_id=f"image_{n}") for n in range(3)]
    fake_nucleus.add_items(linked.nucleus_dataset_id, [{"reference_id": i.reference_id, "image_url": i.image_url, "metadata": {}} for i in made])
    return made


@pytest.fixture
def clothing_type(linked):
    return taxonomy_create(dataset=linked, taxonomy_name="clothing_type", labels=["shirt", "pants", "dress"])


@pytest.fixture
def attributes(linked):
    return taxonomy_create(dataset=linked, taxonomy_name="attributes", labels=["striped", "logo"], multi_label=True)


@pytest.fixture
def publish_to(settings):
    """Switch this process's Celery from eager to publishing on a broker (`publish_to(url, queue)`),
    as a web process with CELERY_BROKER_URL does; restored afterwards."""
    from config.celery import app

    saved = {
        "CELERY_TASK_ALWAYS_EAGER": app.conf.task_always_eager,
        "CELERY_BROKER_URL": app.conf.broker_url,
        "CELERY_TASK_DEFAULT_QUEUE": app.conf.task_default_queue,
    }

    def forget_connections() -> None:
        # Celery keeps a connection pool and a producer pool made for the broker it first used (even
        # eager mode makes them); dropped, the next publish connects to the broker configured now.
        # (Not closed: kombu keeps producer pools per broker URL and would hand out a closed one.)
        app._pool = None
        app.amqp._producer_pool = None

    def switch(url: str, queue: str = "celery") -> None:
        settings.CELERY_TASK_ALWAYS_EAGER, settings.CELERY_BROKER_URL = False, url
        app.conf.update(CELERY_TASK_ALWAYS_EAGER=False, CELERY_BROKER_URL=url, CELERY_TASK_DEFAULT_QUEUE=queue)
        forget_connections()

    yield switch
    app.conf.update(saved)
    forget_connections()
