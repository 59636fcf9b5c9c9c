import pytest
from django.core.exceptions import ValidationError

from taxonomies.models import Label, Taxonomy
from tests.constraints import refused_by_database
from tests.factories import DatasetFactory, LabelFactory, TaxonomyFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("name", ["shirts/pants", "what?", "color#1", "attributes:logo", ""])
def test_the_database_refuses_a_taxonomy_name_nucleus_cannot_put_in_a_url(name):
    dataset = DatasetFactory()
    refused_by_database("taxonomies_taxonomy_name_url_safe", lambda: Taxonomy.objects.create(dataset=dataset, taxonomy_name=name))


@pytest.mark.parametrize("name", ["shirts/pants", "what?", "color#1", "attributes:logo"])
def test_validation_explains_a_forbidden_taxonomy_name(name):
    taxonomy = Taxonomy(dataset=DatasetFactory(), taxonomy_name=name)
    with pytest.raises(ValidationError) as error:
        taxonomy.full_clean()
    assert error.value.message_dict["taxonomy_name"] == [
        "Must not contain '/', '?' or '#' (Nucleus puts it in URLs without encoding it) "
        "or ':' (it names the True/False taxonomies of multi-label taxonomies on Nucleus)."
    ]


def test_the_database_refuses_two_taxonomies_with_one_name_in_a_dataset():
    taxonomy = TaxonomyFactory(taxonomy_name="clothing_type")
    refused_by_database(
        "taxonomies_taxonomy_name_unique_in_dataset",
        lambda: Taxonomy.objects.create(dataset=taxonomy.dataset, taxonomy_name="clothing_type"),
    )


def test_validation_explains_a_duplicate_taxonomy_name():
    taxonomy = TaxonomyFactory(taxonomy_name="clothing_type")
    twin = Taxonomy(dataset=taxonomy.dataset, taxonomy_name="clothing_type")
    with pytest.raises(ValidationError) as error:
        twin.full_clean()
    assert "This dataset already has a taxonomy with this taxonomy_name." in error.value.messages


def test_the_same_taxonomy_name_is_fine_in_another_dataset():
    TaxonomyFactory(taxonomy_name="clothing_type")
    Taxonomy(dataset=DatasetFactory(), taxonomy_name="clothing_type").full_clean()


def test_the_database_refuses_a_type_other_than_category():
    dataset = DatasetFactory()
    refused_by_database(
        "taxonomies_taxonomy_type_category",
        lambda: Taxonomy.objects.create(dataset=dataset, taxonomy_name="boxes", type="box"),
    )


def test_the_database_refuses_a_duplicate_label_in_a_taxonomy():
    label = LabelFactory(name="shirt")
    refused_by_database("taxonomies_label_name_unique_in_taxonomy", lambda: Label.objects.create(taxonomy=label.taxonomy, name="shirt"))


def test_the_database_refuses_an_empty_label():
    taxonomy = TaxonomyFactory()
    refused_by_database("taxonomies_label_name_not_blank", lambda: Label.objects.create(taxonomy=taxonomy, name=" "))


def test_the_database_refuses_two_labels_with_one_hotkey():
    label = LabelFactory(hotkey="h")
    refused_by_database(
        "taxonomies_label_hotkey_unique_in_taxonomy",
        lambda: Label.objects.create(taxonomy=label.taxonomy, name="other", hotkey="h"),
    )


def test_many_labels_may_go_without_a_hotkey():
    taxonomy = TaxonomyFactory()
    LabelFactory(taxonomy=taxonomy, hotkey="")
    LabelFactory(taxonomy=taxonomy, hotkey="").full_clean()


@pytest.mark.parametrize("hotkey, message", [("1", "reserved"), ("s", "reserved"), ("H", "lower-case"), ("ab", "one printable")])
def test_validation_refuses_a_hotkey_the_labeling_page_cannot_use(hotkey, message):
    label = Label(taxonomy=TaxonomyFactory(), name="shirt", hotkey=hotkey)
    with pytest.raises(ValidationError) as error:
        label.full_clean()
    assert message in " ".join(error.value.message_dict["hotkey"])


def test_validation_refuses_a_label_of_a_multi_label_taxonomy_with_a_url_unsafe_character():
    # Each label of a multi-label taxonomy becomes a Nucleus taxonomy name of its own.
    label = Label(taxonomy=TaxonomyFactory(multi_label=True), name="red/blue")
    with pytest.raises(ValidationError) as error:
        label.full_clean()
    assert "Nucleus puts it in URLs" in error.value.message_dict["name"][0]


def test_a_single_label_taxonomy_accepts_any_label_text():
    Label(taxonomy=TaxonomyFactory(), name="red/blue?").full_clean()


def test_validation_refuses_a_hotkey_another_taxonomy_of_the_dataset_uses():
    # The labeling page shows all of a dataset's taxonomies at once.
    shirt = LabelFactory(name="shirt", hotkey="h")
    label = Label(taxonomy=TaxonomyFactory(dataset=shirt.taxonomy.dataset), name="hat", hotkey="h")
    with pytest.raises(ValidationError) as error:
        label.full_clean()
    assert error.value.message_dict["hotkey"] == [f"“{shirt.taxonomy.taxonomy_name}” already uses 'h' for “shirt”."]


def test_the_same_hotkey_is_fine_in_another_dataset():
    LabelFactory(hotkey="h")
    Label(taxonomy=TaxonomyFactory(), name="hat", hotkey="h").full_clean()
