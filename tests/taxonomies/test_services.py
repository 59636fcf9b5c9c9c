import pytest
from django.core.exceptions import ValidationError

from taxonomies.models import Label, Taxonomy
from taxonomies.services import (
    label_delete,
    label_update,
    taxonomy_add_labels,
    taxonomy_create,
    taxonomy_reorder_labels,
    taxonomy_update,
)
from tests.factories import CategoryAnnotationFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def clothing_type(dataset):
    return taxonomy_create(
        dataset=dataset, taxonomy_name="clothing_type", labels=["shirt", {"name": "pants", "hotkey": "p"}, "dress"]
    )


def test_it_creates_a_taxonomy_with_its_labels_in_order(clothing_type):
    assert clothing_type.label_names() == ["shirt", "pants", "dress"]
    assert clothing_type.labels.get(name="pants").hotkey == "p"
    assert clothing_type.type == "category" and not clothing_type.multi_label


def test_it_refuses_a_taxonomy_without_labels(dataset):
    with pytest.raises(ValidationError, match="at least one label"):
        taxonomy_create(dataset=dataset, taxonomy_name="empty", labels=[])


def test_it_reports_every_bad_label_with_its_index_and_stores_nothing(dataset):
    with pytest.raises(ValidationError) as error:
        taxonomy_create(dataset=dataset, taxonomy_name="colors", labels=["red", "", "red", {"name": "blue", "hotkey": "1"}])
    messages = error.value.message_dict["labels"]
    assert any(m.startswith("labels[1]") and "empty" in m for m in messages)
    assert any(m.startswith("labels[2]") and "listed twice" in m for m in messages)
    assert any(m.startswith("labels[3]") and "reserved" in m for m in messages)
    assert not Taxonomy.objects.exists() and not Label.objects.exists()


def test_it_refuses_a_forbidden_taxonomy_name_with_the_reason(dataset):
    with pytest.raises(ValidationError) as error:
        taxonomy_create(dataset=dataset, taxonomy_name="tops/bottoms", labels=["top"])
    assert "Nucleus puts it in URLs" in error.value.message_dict["taxonomy_name"][0]


def test_adding_labels_appends_new_ones_and_skips_known_ones_like_nucleus_update(clothing_type):
    added = taxonomy_add_labels(taxonomy=clothing_type, labels=["dress", "jacket", "shoes"])
    assert [label.name for label in added] == ["jacket", "shoes"]
    assert clothing_type.label_names() == ["shirt", "pants", "dress", "jacket", "shoes"]


def test_adding_labels_names_the_bad_one_by_its_input_index(clothing_type):
    with pytest.raises(ValidationError) as error:
        taxonomy_add_labels(taxonomy=clothing_type, labels=["shirt", {"name": "jacket", "hotkey": "p"}])
    assert error.value.message_dict["labels"][0].startswith("labels[1] “jacket”")


def test_renaming_a_label_keeps_its_annotations(clothing_type):
    shirt = clothing_type.labels.get(name="shirt")
    annotation = CategoryAnnotationFactory(item__dataset=clothing_type.dataset, dataset=clothing_type.dataset, taxonomy=clothing_type, label=shirt)
    label_update(label=shirt, name="t-shirt", hotkey="t", position=shirt.position)
    annotation.refresh_from_db()
    assert annotation.label.name == "t-shirt"


def test_renaming_a_label_records_that_nucleus_must_rebuild_the_taxonomy(clothing_type):
    clothing_type.nucleus_labels = clothing_type.label_names()
    clothing_type.save()
    assert not clothing_type.needs_nucleus_rebuild()

    label_update(label=clothing_type.labels.get(name="shirt"), name="t-shirt", hotkey="", position=0)

    assert clothing_type.nucleus_labels_removed() == ["shirt"]
    assert clothing_type.nucleus_labels_added() == ["t-shirt"]
    assert clothing_type.needs_nucleus_rebuild()


def test_adding_a_label_only_needs_an_update_on_nucleus(clothing_type):
    clothing_type.nucleus_labels = clothing_type.label_names()
    clothing_type.save()
    taxonomy_add_labels(taxonomy=clothing_type, labels=["jacket"])
    assert clothing_type.nucleus_labels_added() == ["jacket"] and not clothing_type.needs_nucleus_rebuild()


def test_renaming_to_an_existing_label_is_refused(clothing_type):
    with pytest.raises(ValidationError, match="already has this label"):
        label_update(label=clothing_type.labels.get(name="shirt"), name="pants", hotkey="", position=0)


def test_reordering_puts_labels_in_the_given_order(clothing_type):
    ids = {label.name: label.id for label in clothing_type.labels.all()}
    taxonomy_reorder_labels(taxonomy=clothing_type, label_ids=[ids["dress"], ids["shirt"], ids["pants"]])
    assert clothing_type.label_names() == ["dress", "shirt", "pants"]


def test_reordering_must_name_every_label_once(clothing_type):
    first = clothing_type.labels.first()
    with pytest.raises(ValidationError, match="exactly once"):
        taxonomy_reorder_labels(taxonomy=clothing_type, label_ids=[first.id, first.id])


def test_deleting_a_label_in_use_is_refused_with_a_clear_message(clothing_type):
    shirt = clothing_type.labels.get(name="shirt")
    CategoryAnnotationFactory(item__dataset=clothing_type.dataset, dataset=clothing_type.dataset, taxonomy=clothing_type, label=shirt)
    with pytest.raises(ValidationError, match="“shirt” is used by 1 annotation"):
        label_delete(label=shirt)
    assert Label.objects.filter(pk=shirt.pk).exists()


def revision_of(dataset) -> int:
    dataset.refresh_from_db(fields=["taxonomies_revision"])
    return dataset.taxonomies_revision


@pytest.mark.parametrize(
    "change",
    [
        lambda taxonomy: taxonomy_create(dataset=taxonomy.dataset, taxonomy_name="quality", labels=["good", "bad"]),
        lambda taxonomy: taxonomy_update(taxonomy=taxonomy, taxonomy_name="kind", applies_to=taxonomy.applies_to, required=False, position=5),
        lambda taxonomy: taxonomy_add_labels(taxonomy=taxonomy, labels=["hat"]),
        lambda taxonomy: label_update(label=taxonomy.labels.first(), name="tee", hotkey="t", position=0),
        lambda taxonomy: taxonomy_reorder_labels(taxonomy=taxonomy, label_ids=list(taxonomy.labels.values_list("id", flat=True))[::-1]),
        lambda taxonomy: label_delete(label=taxonomy.labels.last()),
    ],
    ids=["create", "update", "add labels", "rename a label", "reorder labels", "delete a label"],
)
def test_every_change_bumps_the_datasets_taxonomies_revision_for_readers_that_cache_them(clothing_type, change):
    before = revision_of(clothing_type.dataset)
    change(clothing_type)
    assert revision_of(clothing_type.dataset) > before


def test_adding_only_labels_the_taxonomy_has_leaves_the_revision_alone(clothing_type):
    before = revision_of(clothing_type.dataset)
    taxonomy_add_labels(taxonomy=clothing_type, labels=[label.name for label in clothing_type.labels.all()])
    assert revision_of(clothing_type.dataset) == before
