"""Helpers the API tests share (fixtures live in conftest.py)."""

from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from labeling.models import AnnotationLabel, CategoryAnnotation, Dataset, DatasetMember, Item, Scene, Task, TaskSkip
from labeling.services.annotations import AnnotationSaved, annotation_save
from taxonomies.models import Label, Taxonomy
from tests.factories import ItemFactory

ROW_MODELS = (Dataset, DatasetMember, Item, Scene, Task, TaskSkip, CategoryAnnotation, AnnotationLabel, Taxonomy, Label)


def url(name: str, **kwargs) -> str:
    return reverse(f"api:{name}", kwargs=kwargs)


def token_client(user) -> APIClient:
    """A client that authenticates with `Authorization: Token <key>`, as a script does."""
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


def row_counts() -> dict[str, int]:
    """How many rows each table holds: equal before and after a refused request, it proves that
    nothing was stored."""
    return {model.__name__: model.objects.count() for model in ROW_MODELS}


def item_with_task(dataset: Dataset, reference_id: str, **fields) -> Item:
    """An item by URL with its queue task, as an import makes it."""
    item = ItemFactory(dataset=dataset, reference_id=reference_id, **fields)
    Task.objects.create(dataset=dataset, item=item)
    return item


def answer(*, target, taxonomy: Taxonomy, names: list[str], annotator, finished: bool = True) -> AnnotationSaved:
    """An annotation stored by the service the API itself uses."""
    labels = [taxonomy.labels.get(name=name) for name in names]
    return annotation_save(target=target, taxonomy=taxonomy, labels=labels, annotator=annotator, finished=finished)


def errors_of(response) -> list[dict]:
    """The `errors` list of a refused request."""
    return response.json()["errors"]


def fields_of(response) -> list[str]:
    return [error["field"] for error in errors_of(response)]
