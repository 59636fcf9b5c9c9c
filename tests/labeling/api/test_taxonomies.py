"""datasets/{id}/taxonomies/ and their labels, with Nucleus's add_taxonomy semantics."""

from urllib.parse import quote

import pytest

from labeling.models import AnnotationLabel, CategoryAnnotation
from taxonomies.models import Label, Taxonomy
from taxonomies.services import taxonomy_create
from tests.labeling.api.support import answer, errors_of, item_with_task, row_counts, url

pytestmark = pytest.mark.django_db


def label_names(taxonomy: Taxonomy) -> list[str]:
    return list(taxonomy.labels.values_list("name", flat=True))


def label_url(dataset, taxonomy_name: str, label: str) -> str:
    """A label's URL, the label percent-encoded as a client must ('/' included)."""
    base = url("label-list", dataset_id=dataset.id, taxonomy_name=taxonomy_name)
    return f"{base}{quote(label, safe='')}/"


class TestList:
    def test_it_lists_the_taxonomies_in_nucleus_vocabulary(self, labeler_client, dataset, clothing_type):
        response = labeler_client.get(url("taxonomy-list", dataset_id=dataset.id))
        assert response.status_code == 200
        assert response.json() == [
            {
                "taxonomy_name": "clothing_type", "type": "category", "labels": ["shirt", "pants", "dress"],
                "label_hotkeys": {}, "multi_label": False, "applies_to": "items", "required": True,
                "position": 1, "needs_nucleus_rebuild": False,
            }
        ]


class TestCreate:
    def post(self, client, dataset, **body):
        return client.post(url("taxonomy-list", dataset_id=dataset.id), body, format="json")

    def test_it_creates_a_taxonomy_with_its_labels_in_order(self, admin_client, dataset):
        response = self.post(admin_client, dataset, taxonomy_name="color", type="category", labels=["red", "green", "blue"])
        assert response.status_code == 201
        body = response.json()
        assert (body["status"], body["taxonomy_name"], body["labels"], body["multi_label"]) == (
            "Taxonomy created", "color", ["red", "green", "blue"], False
        )
        assert label_names(Taxonomy.objects.get(dataset=dataset, taxonomy_name="color")) == ["red", "green", "blue"]

    def test_labels_may_carry_hotkeys(self, admin_client, dataset):
        response = self.post(admin_client, dataset, taxonomy_name="color", labels=[{"name": "red", "hotkey": "r"}, "green"])
        assert (response.status_code, response.json()["label_hotkeys"]) == (201, {"red": "r"})

    def test_it_creates_a_multi_label_taxonomy_for_scenes(self, admin_client, dataset):
        response = self.post(admin_client, dataset, taxonomy_name="weather", labels=["rain", "fog"], multi_label=True, applies_to="scenes", required=False)
        body = response.json()
        assert (response.status_code, body["multi_label"], body["applies_to"], body["required"]) == (201, True, "scenes", False)

    def test_the_same_taxonomy_again_without_update_leaves_it_as_it_is(self, admin_client, dataset, clothing_type):
        response = self.post(admin_client, dataset, taxonomy_name="clothing_type", labels=["hat", "shirt"])
        assert (response.status_code, response.json()["status"]) == (200, "Taxonomy already exists")
        assert response.json()["labels"] == ["shirt", "pants", "dress"]
        assert label_names(clothing_type) == ["shirt", "pants", "dress"]

    def test_with_update_it_appends_the_new_labels_in_their_order(self, admin_client, dataset, clothing_type):
        response = self.post(admin_client, dataset, taxonomy_name="clothing_type", labels=["hat", "shirt", "coat"], update=True)
        assert (response.status_code, response.json()["status"]) == (200, "Taxonomy updated")
        assert response.json()["labels"] == ["shirt", "pants", "dress", "hat", "coat"]
        assert label_names(clothing_type) == ["shirt", "pants", "dress", "hat", "coat"]

    def test_it_refuses_to_change_multi_label_of_an_existing_taxonomy(self, admin_client, dataset, clothing_type):
        before = row_counts()
        response = self.post(admin_client, dataset, taxonomy_name="clothing_type", labels=["hat"], multi_label=True, update=True)
        assert response.status_code == 400
        assert errors_of(response) == [
            {"field": "multi_label", "message": "“clothing_type” exists with multi_label=False; it cannot change."}
        ]
        assert row_counts() == before

    @pytest.mark.parametrize("name", ["tops/bottoms", "what?", "color#1", "attributes:striped"])
    def test_it_refuses_a_taxonomy_name_nucleus_cannot_put_in_a_url(self, admin_client, dataset, name):
        before = row_counts()
        response = self.post(admin_client, dataset, taxonomy_name=name, labels=["a"])
        assert response.status_code == 400
        (error,) = errors_of(response)
        assert error["field"] == "taxonomy_name"
        assert error["message"].startswith("Must not contain '/', '?' or '#'")
        assert row_counts() == before

    def test_it_refuses_an_empty_list_of_labels(self, admin_client, dataset):
        before = row_counts()
        response = self.post(admin_client, dataset, taxonomy_name="color", labels=[])
        assert response.status_code == 400
        assert errors_of(response) == [{"field": "labels", "message": "This list may not be empty."}]
        assert row_counts() == before

    @pytest.mark.parametrize("empty", ["", "   "])
    def test_it_refuses_an_empty_label_and_names_its_position(self, admin_client, dataset, empty):
        before = row_counts()
        response = self.post(admin_client, dataset, taxonomy_name="color", labels=["red", empty])
        assert response.status_code == 400
        assert errors_of(response) == [{"field": "labels", "message": "labels[1]: A label cannot be empty."}]
        assert row_counts() == before

    def test_it_refuses_a_label_listed_twice(self, admin_client, dataset):
        before = row_counts()
        response = self.post(admin_client, dataset, taxonomy_name="color", labels=["red", "red"])
        assert response.status_code == 400
        assert errors_of(response) == [{"field": "labels", "message": "labels[1]: “red” is listed twice."}]
        assert row_counts() == before

    def test_it_refuses_a_slash_in_a_label_of_a_multi_label_taxonomy(self, admin_client, dataset):
        before = row_counts()
        response = self.post(admin_client, dataset, taxonomy_name="attributes", labels=["t-shirt/top"], multi_label=True)
        assert response.status_code == 400
        (error,) = errors_of(response)
        assert error["field"] == "labels" and error["message"].startswith("labels[0] “t-shirt/top”: Must not contain '/'")
        assert row_counts() == before

    def test_it_refuses_a_label_that_is_neither_a_name_nor_a_name_and_hotkey(self, admin_client, dataset):
        response = self.post(admin_client, dataset, taxonomy_name="color", labels=[{"name": "red", "colour": "#f00"}])
        assert response.status_code == 400
        assert errors_of(response) == [{"field": "labels[0]", "message": 'A label is a string or {"name": ..., "hotkey": ...}.'}]
        assert not Taxonomy.objects.exists()


class TestDetail:
    def test_it_shows_one_taxonomy(self, labeler_client, dataset, clothing_type):
        response = labeler_client.get(url("taxonomy-detail", dataset_id=dataset.id, taxonomy_name="clothing_type"))
        assert (response.status_code, response.json()["labels"]) == (200, ["shirt", "pants", "dress"])

    def test_an_unknown_taxonomy_is_not_found(self, labeler_client, dataset):
        assert labeler_client.get(url("taxonomy-detail", dataset_id=dataset.id, taxonomy_name="nope")).status_code == 404

    def test_an_admin_renames_a_taxonomy_and_makes_it_optional(self, admin_client, dataset, clothing_type):
        response = admin_client.patch(
            url("taxonomy-detail", dataset_id=dataset.id, taxonomy_name="clothing_type"),
            {"taxonomy_name": "garment", "required": False}, format="json",
        )
        assert (response.status_code, response.json()["taxonomy_name"], response.json()["required"]) == (200, "garment", False)
        clothing_type.refresh_from_db()
        assert (clothing_type.taxonomy_name, clothing_type.required, clothing_type.applies_to) == ("garment", False, "items")

    def test_it_refuses_renaming_a_taxonomy_to_a_name_with_a_slash(self, admin_client, dataset, clothing_type):
        response = admin_client.patch(
            url("taxonomy-detail", dataset_id=dataset.id, taxonomy_name="clothing_type"), {"taxonomy_name": "tops/bottoms"}, format="json"
        )
        assert (response.status_code, [error["field"] for error in errors_of(response)]) == (400, ["taxonomy_name"])
        clothing_type.refresh_from_db()
        assert clothing_type.taxonomy_name == "clothing_type"


class TestDelete:
    def test_an_admin_deletes_a_taxonomy_nobody_has_answered(self, admin_client, dataset, clothing_type):
        response = admin_client.delete(url("taxonomy-detail", dataset_id=dataset.id, taxonomy_name="clothing_type"))
        assert response.status_code == 204
        assert not Taxonomy.objects.exists() and not Label.objects.exists()

    def test_it_refuses_to_delete_finished_annotations_without_confirmation(self, admin_client, dataset, clothing_type, labeler):
        answer(target=item_with_task(dataset, "image_1"), taxonomy=clothing_type, names=["shirt"], annotator=labeler)
        before = row_counts()
        response = admin_client.delete(url("taxonomy-detail", dataset_id=dataset.id, taxonomy_name="clothing_type"))
        assert response.status_code == 400
        assert errors_of(response) == [
            {"field": "confirm", "message": "“clothing_type” has 1 finished annotation(s); deleting it deletes them. Confirm to go ahead."}
        ]
        assert row_counts() == before

    def test_with_confirmation_it_deletes_the_taxonomy_and_its_annotations(self, admin_client, dataset, clothing_type, labeler):
        answer(target=item_with_task(dataset, "image_1"), taxonomy=clothing_type, names=["shirt"], annotator=labeler)
        response = admin_client.delete(url("taxonomy-detail", dataset_id=dataset.id, taxonomy_name="clothing_type") + "?confirm=true")
        assert response.status_code == 204
        assert not Taxonomy.objects.exists() and not CategoryAnnotation.objects.exists()

    def test_with_confirmation_it_deletes_a_multi_label_taxonomy_and_the_labels_chosen_in_it(self, admin_client, dataset, attributes, labeler):
        answer(target=item_with_task(dataset, "image_1"), taxonomy=attributes, names=["striped", "logo"], annotator=labeler)
        response = admin_client.delete(url("taxonomy-detail", dataset_id=dataset.id, taxonomy_name="attributes") + "?confirm=true")
        assert response.status_code == 204
        assert not CategoryAnnotation.objects.exists() and not AnnotationLabel.objects.exists() and not Label.objects.exists()


class TestAddLabels:
    def test_an_admin_appends_labels_keeping_their_order_and_the_existing_ones(self, admin_client, dataset, clothing_type):
        response = admin_client.post(
            url("label-list", dataset_id=dataset.id, taxonomy_name="clothing_type"), {"labels": ["coat", "dress", "hat"]}, format="json"
        )
        assert (response.status_code, response.json()["labels"]) == (200, ["shirt", "pants", "dress", "coat", "hat"])

    def test_it_refuses_an_empty_label_and_adds_none(self, admin_client, dataset, clothing_type):
        response = admin_client.post(
            url("label-list", dataset_id=dataset.id, taxonomy_name="clothing_type"), {"labels": ["coat", ""]}, format="json"
        )
        assert response.status_code == 400
        assert errors_of(response) == [{"field": "labels", "message": "labels[1]: A label cannot be empty."}]
        assert label_names(clothing_type) == ["shirt", "pants", "dress"]


class TestRenameLabel:
    def test_an_admin_renames_a_label_and_its_annotations_keep_it(self, admin_client, dataset, clothing_type, labeler):
        saved = answer(target=item_with_task(dataset, "image_1"), taxonomy=clothing_type, names=["shirt"], annotator=labeler)
        response = admin_client.patch(label_url(dataset, "clothing_type", "shirt"), {"name": "blouse"}, format="json")
        assert (response.status_code, response.json()["labels"]) == (200, ["blouse", "pants", "dress"])
        saved.annotation.refresh_from_db()
        assert saved.annotation.label.name == "blouse"

    def test_renaming_a_label_nucleus_has_means_the_taxonomy_must_be_rebuilt_there(self, admin_client, dataset, clothing_type):
        clothing_type.nucleus_labels = ["shirt", "pants", "dress"]
        clothing_type.save()
        response = admin_client.patch(label_url(dataset, "clothing_type", "shirt"), {"name": "blouse"}, format="json")
        assert response.json()["needs_nucleus_rebuild"] is True

    def test_it_refuses_a_name_another_label_of_the_taxonomy_has(self, admin_client, dataset, clothing_type):
        response = admin_client.patch(label_url(dataset, "clothing_type", "shirt"), {"name": "pants"}, format="json")
        assert response.status_code == 400
        assert [error["message"] for error in errors_of(response)] == ["This taxonomy already has this label."]
        assert label_names(clothing_type) == ["shirt", "pants", "dress"]

    def test_an_unknown_label_is_not_found(self, admin_client, dataset, clothing_type):
        assert admin_client.patch(label_url(dataset, "clothing_type", "hat"), {"name": "cap"}, format="json").status_code == 404

    @pytest.mark.parametrize("name", ["t-shirt/top", "what?", "no. #1", "50%", "a/b/"])
    def test_a_label_with_url_characters_is_renamed_through_its_percent_encoded_url(self, admin_client, dataset, name):
        taxonomy = taxonomy_create(dataset=dataset, taxonomy_name="kind", labels=[name, "other"])
        response = admin_client.patch(label_url(dataset, "kind", name), {"name": "renamed"}, format="json")
        assert (response.status_code, label_names(taxonomy)) == (200, ["renamed", "other"])


class TestRemoveLabel:
    def test_an_admin_removes_a_label_nobody_uses(self, admin_client, dataset, clothing_type):
        response = admin_client.delete(label_url(dataset, "clothing_type", "dress"))
        assert (response.status_code, response.json()["labels"]) == (200, ["shirt", "pants"])

    def test_it_refuses_to_remove_a_label_finished_annotations_use(self, admin_client, dataset, clothing_type, labeler):
        answer(target=item_with_task(dataset, "image_1"), taxonomy=clothing_type, names=["shirt"], annotator=labeler)
        before = row_counts()
        response = admin_client.delete(label_url(dataset, "clothing_type", "shirt"))
        assert response.status_code == 400
        assert errors_of(response) == [
            {"field": "relabel_to", "message": "“shirt” is used by 1 finished annotation(s): choose a label to relabel them to."}
        ]
        assert row_counts() == before

    def test_with_relabel_to_it_moves_the_annotations_and_bumps_their_version(self, admin_client, dataset, clothing_type, labeler):
        saved = answer(target=item_with_task(dataset, "image_1"), taxonomy=clothing_type, names=["shirt"], annotator=labeler)
        response = admin_client.delete(label_url(dataset, "clothing_type", "shirt") + "?relabel_to=dress")
        assert (response.status_code, response.json()["labels"]) == (200, ["pants", "dress"])
        annotation = CategoryAnnotation.objects.select_related("label").get(pk=saved.annotation.pk)
        assert (annotation.label.name, annotation.version, annotation.sync_state) == ("dress", 2, "pending")

    def test_it_refuses_to_relabel_to_a_label_the_taxonomy_does_not_have(self, admin_client, dataset, clothing_type, attributes, labeler):
        answer(target=item_with_task(dataset, "image_1"), taxonomy=clothing_type, names=["shirt"], annotator=labeler)
        response = admin_client.delete(label_url(dataset, "clothing_type", "shirt") + "?relabel_to=striped")
        assert response.status_code == 400
        assert errors_of(response) == [{"field": "relabel_to", "message": "“clothing_type” has no label “striped”."}]
        assert label_names(clothing_type) == ["shirt", "pants", "dress"]

    def test_with_drop_from_annotations_a_multi_label_annotation_loses_the_label(self, admin_client, dataset, attributes, labeler):
        saved = answer(target=item_with_task(dataset, "image_1"), taxonomy=attributes, names=["striped", "logo"], annotator=labeler)
        response = admin_client.delete(label_url(dataset, "attributes", "striped") + "?drop_from_annotations=true")
        assert (response.status_code, response.json()["labels"]) == (200, ["logo", "long_sleeves"])
        annotation = CategoryAnnotation.objects.get(pk=saved.annotation.pk)
        assert (annotation.chosen_label_names(), annotation.version) == (["logo"], 2)

    def test_it_refuses_drop_from_annotations_for_a_single_label_taxonomy(self, admin_client, dataset, clothing_type, labeler):
        answer(target=item_with_task(dataset, "image_1"), taxonomy=clothing_type, names=["shirt"], annotator=labeler)
        response = admin_client.delete(label_url(dataset, "clothing_type", "shirt") + "?drop_from_annotations=true")
        assert response.status_code == 400
        assert [error["field"] for error in errors_of(response)] == ["relabel_to"]
        assert label_names(clothing_type) == ["shirt", "pants", "dress"]

    def test_a_label_with_a_slash_is_removed_through_its_percent_encoded_url(self, admin_client, dataset, labeler):
        taxonomy = taxonomy_create(dataset=dataset, taxonomy_name="kind", labels=["t-shirt/top", "trouser"])
        saved = answer(target=item_with_task(dataset, "image_1"), taxonomy=taxonomy, names=["t-shirt/top"], annotator=labeler)
        response = admin_client.delete(label_url(dataset, "kind", "t-shirt/top") + "?relabel_to=trouser")
        assert (response.status_code, label_names(taxonomy)) == (200, ["trouser"])
        assert CategoryAnnotation.objects.get(pk=saved.annotation.pk).label.name == "trouser"
