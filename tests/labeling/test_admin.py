"""The Django admin: every page loads, and taxonomies are managed with their labels inline."""

import pytest
from django.contrib.admin.sites import site as admin_site
from django.urls import reverse

from audit.models import AuditEvent
from labeling.models import CategoryAnnotation, Dataset
from labeling.services.annotations import annotation_save
from labeling.selectors import taxonomies_by_name_cached
from taxonomies.models import Label, Taxonomy
from taxonomies.services import taxonomy_add_labels, taxonomy_create
from tests.factories import CategoryAnnotationFactory, ItemFactory, SceneFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, superuser):
    client.force_login(superuser)
    return client


def taxonomy_form(taxonomy_fields: dict, labels: list[dict], initial: int = 0) -> dict:
    """POST data for the taxonomy admin page: the taxonomy's fields and one inline row per label
    (`id` for an existing label, `remove` / `relabel_to` to remove one)."""
    data = {
        **taxonomy_fields,
        "labels-TOTAL_FORMS": str(len(labels)),
        "labels-INITIAL_FORMS": str(initial),
        "labels-MIN_NUM_FORMS": "0",
        "labels-MAX_NUM_FORMS": "1000",
    }
    for index, row in enumerate(labels):
        for key, value in row.items():
            data[f"labels-{index}-{key}"] = "on" if value is True else value
    return data


def existing_rows(taxonomy: Taxonomy) -> list[dict]:
    return [
        {"id": str(label.id), "taxonomy": str(taxonomy.id), "name": label.name, "hotkey": label.hotkey, "position": str(label.position)}
        for label in taxonomy.labels.all()
    ]


def change_fields(taxonomy: Taxonomy) -> dict:
    return {"taxonomy_name": taxonomy.taxonomy_name, "type": "category", "applies_to": taxonomy.applies_to, "required": "on", "position": "1"}


def change_url(taxonomy: Taxonomy) -> str:
    return reverse("admin:taxonomies_taxonomy_change", args=[taxonomy.pk])


@pytest.mark.parametrize("model", ["labeling/dataset", "labeling/item", "labeling/scene", "labeling/categoryannotation", "taxonomies/taxonomy"])
def test_every_admin_list_page_loads(admin_client, clothing_type, model):
    CategoryAnnotationFactory(item__dataset=clothing_type.dataset, dataset=clothing_type.dataset, taxonomy=clothing_type)
    SceneFactory()
    assert admin_client.get(f"/admin/{model}/").status_code == 200


def test_every_change_page_loads(admin_client, clothing_type):
    annotation = CategoryAnnotationFactory(item__dataset=clothing_type.dataset, dataset=clothing_type.dataset, taxonomy=clothing_type)
    scene = SceneFactory()
    for url in [
        reverse("admin:labeling_dataset_change", args=[clothing_type.dataset_id]),
        reverse("admin:labeling_item_change", args=[annotation.item_id]),
        reverse("admin:labeling_scene_change", args=[scene.pk]),
        reverse("admin:labeling_categoryannotation_change", args=[annotation.pk]),
        change_url(clothing_type),
        reverse("admin:taxonomies_taxonomy_add"),
        reverse("admin:labeling_dataset_add"),
    ]:
        assert admin_client.get(url).status_code == 200, url


def test_a_taxonomy_with_labels_is_created_through_the_admin(admin_client, dataset):
    response = admin_client.post(
        reverse("admin:taxonomies_taxonomy_add"),
        taxonomy_form(
            {"dataset": str(dataset.id), "taxonomy_name": "clothing_type", "type": "category", "applies_to": "items", "required": "on", "position": "0"},
            [
                {"name": "shirt", "hotkey": "h", "position": ""},
                {"name": "pants", "hotkey": "", "position": ""},
                {"name": "dress", "hotkey": "", "position": ""},
                {"name": "", "hotkey": "", "position": ""},  # an empty extra row is ignored
            ],
        ),
    )
    assert response.status_code == 302, response.context["errors"] if response.context else response
    taxonomy = Taxonomy.objects.get(taxonomy_name="clothing_type")
    assert taxonomy.label_names() == ["shirt", "pants", "dress"]
    assert taxonomy.labels.get(name="shirt").hotkey == "h"


def test_the_admin_refuses_a_forbidden_taxonomy_name_with_the_reason(admin_client, dataset):
    response = admin_client.post(
        reverse("admin:taxonomies_taxonomy_add"),
        taxonomy_form(
            {"dataset": str(dataset.id), "taxonomy_name": "tops/bottoms", "type": "category", "applies_to": "items", "position": "0"},
            [{"name": "top", "hotkey": "", "position": ""}],
        ),
    )
    assert response.status_code == 200
    assert "Nucleus puts it in URLs" in response.content.decode()
    assert not Taxonomy.objects.exists()


def test_the_admin_refuses_a_taxonomy_without_labels(admin_client, dataset):
    response = admin_client.post(
        reverse("admin:taxonomies_taxonomy_add"),
        taxonomy_form(
            {"dataset": str(dataset.id), "taxonomy_name": "empty", "type": "category", "applies_to": "items", "position": "0"},
            [{"name": "", "hotkey": "", "position": ""}],
        ),
    )
    assert "A taxonomy needs at least one label." in response.content.decode()
    assert not Taxonomy.objects.exists()


def test_the_admin_refuses_one_hotkey_on_two_new_labels(admin_client, clothing_type):
    rows = existing_rows(clothing_type) + [{"name": "jacket", "hotkey": "j", "position": ""}, {"name": "jeans", "hotkey": "j", "position": ""}]
    response = admin_client.post(change_url(clothing_type), taxonomy_form(change_fields(clothing_type), rows, initial=3))
    assert "already uses this hotkey" in response.content.decode()
    assert clothing_type.label_names() == ["shirt", "pants", "dress"]


def test_labels_are_added_renamed_and_reordered_through_the_admin(admin_client, clothing_type):
    rows = existing_rows(clothing_type)
    rows[0].update(name="t-shirt", position="5")  # rename shirt and move it last
    rows.append({"name": "jacket", "hotkey": "j", "position": "1"})

    response = admin_client.post(change_url(clothing_type), taxonomy_form(change_fields(clothing_type), rows, initial=3))

    assert response.status_code == 302
    assert clothing_type.label_names() == ["pants", "jacket", "dress", "t-shirt"]


def test_the_admin_shows_how_many_annotations_use_each_label(admin_client, clothing_type, labeler):
    shirt = clothing_type.labels.get(name="shirt")
    for _ in range(2):
        annotation_save(target=ItemFactory(dataset=clothing_type.dataset), taxonomy=clothing_type, labels=[shirt], annotator=labeler, finished=True)
    annotation_save(target=ItemFactory(dataset=clothing_type.dataset), taxonomy=clothing_type, labels=[shirt], annotator=labeler, finished=False)

    page = admin_client.get(change_url(clothing_type)).content.decode()

    assert "2 finished, 1 draft" in page
    assert "0 finished, 0 draft" in page


def test_removing_a_label_in_use_is_refused_until_the_admin_chooses_a_relabel(admin_client, clothing_type, labeler):
    shirt, pants = clothing_type.labels.get(name="shirt"), clothing_type.labels.get(name="pants")
    saved = annotation_save(target=ItemFactory(dataset=clothing_type.dataset), taxonomy=clothing_type, labels=[shirt], annotator=labeler, finished=True)
    rows = existing_rows(clothing_type)
    rows[0]["remove"] = True

    refused = admin_client.post(change_url(clothing_type), taxonomy_form(change_fields(clothing_type), rows, initial=3))

    assert refused.status_code == 200
    assert "“shirt” is used by 1 finished annotation(s)" in refused.content.decode()
    assert Label.objects.filter(pk=shirt.pk).exists()

    rows[0]["relabel_to"] = str(pants.pk)
    confirmed = admin_client.post(change_url(clothing_type), taxonomy_form(change_fields(clothing_type), rows, initial=3))

    assert confirmed.status_code == 302
    assert clothing_type.label_names() == ["pants", "dress"]
    annotation = CategoryAnnotation.objects.get(pk=saved.annotation.pk)
    assert (annotation.label, annotation.version, annotation.sync_state) == (pants, 2, "pending")


def test_the_admin_warns_that_a_removed_label_means_a_rebuild_on_nucleus(admin_client, clothing_type):
    clothing_type.nucleus_labels = ["shirt", "pants", "dress"]
    clothing_type.save()
    rows = existing_rows(clothing_type)
    rows[2]["remove"] = True

    response = admin_client.post(change_url(clothing_type), taxonomy_form(change_fields(clothing_type), rows, initial=3), follow=True)

    page = response.content.decode()
    assert "Nucleus keeps labels append-only" in page and "dress" in page
    assert "Must be rebuilt on Nucleus" in admin_client.get(reverse("admin:taxonomies_taxonomy_changelist")).content.decode()


def test_multi_label_cannot_be_switched_on_an_existing_taxonomy(admin_client, clothing_type):
    fields = {**change_fields(clothing_type), "multi_label": "on"}
    admin_client.post(change_url(clothing_type), taxonomy_form(fields, existing_rows(clothing_type), initial=3))
    clothing_type.refresh_from_db()
    assert not clothing_type.multi_label


def test_a_labeler_who_is_not_staff_cannot_open_the_admin(client, labeler):
    client.force_login(labeler)
    response = client.get(reverse("admin:taxonomies_taxonomy_changelist"))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_the_admin_refuses_a_hotkey_another_taxonomy_of_the_dataset_uses(admin_client, clothing_type):
    taxonomy_create(dataset=clothing_type.dataset, taxonomy_name="color", labels=[{"name": "red", "hotkey": "r"}])
    rows = existing_rows(clothing_type) + [{"name": "robe", "hotkey": "r", "position": ""}]
    response = admin_client.post(change_url(clothing_type), taxonomy_form(change_fields(clothing_type), rows, initial=3))
    assert "“color” already uses &#x27;r&#x27; for “red”." in response.content.decode()
    assert clothing_type.label_names() == ["shirt", "pants", "dress"]


def test_the_add_page_refuses_a_hotkey_another_taxonomy_of_the_dataset_uses(admin_client, dataset):
    taxonomy_create(dataset=dataset, taxonomy_name="clothing_type", labels=[{"name": "shirt", "hotkey": "h"}])
    response = admin_client.post(
        reverse("admin:taxonomies_taxonomy_add"),
        taxonomy_form(
            {"dataset": str(dataset.id), "taxonomy_name": "color", "type": "category", "applies_to": "items", "required": "on"},
            [{"name": "red", "hotkey": "h", "position": ""}],
        ),
    )
    assert response.status_code == 200
    assert "“clothing_type” already uses &#x27;h&#x27; for “shirt”." in response.content.decode()
    assert not Taxonomy.objects.filter(taxonomy_name="color").exists()


def test_the_add_page_refuses_a_multi_label_class_name_nucleus_cannot_put_in_a_url(admin_client, dataset):
    response = admin_client.post(
        reverse("admin:taxonomies_taxonomy_add"),
        taxonomy_form(
            {"dataset": str(dataset.id), "taxonomy_name": "attributes", "type": "category", "applies_to": "items", "multi_label": "on"},
            [{"name": "long/short", "hotkey": "", "position": ""}],
        ),
    )
    assert response.status_code == 200
    assert "Must not contain" in response.content.decode()
    assert not Taxonomy.objects.exists()


# --- Writes go through the services ---------------------------------------------------------


def test_saving_a_dataset_read_before_a_taxonomy_change_keeps_the_newer_taxonomies_revision(superuser, clothing_type, rf):
    dataset = Dataset.objects.get(pk=clothing_type.dataset_id)
    taxonomies_by_name_cached(dataset=dataset)  # a process caches the taxonomies at revision N
    stale = Dataset.objects.get(pk=dataset.pk)  # the admin's get_object, at revision N
    taxonomy_add_labels(taxonomy=clothing_type, labels=["jacket"])  # commits revision N + 1
    request = rf.post(reverse("admin:labeling_dataset_change", args=[dataset.pk]))
    request.user = superuser
    dataset_admin = admin_site._registry[Dataset]
    form = dataset_admin.get_form(request, stale, change=True)(
        data={"name": "Clothes", "kind": stale.kind, "nucleus_dataset_id": "", "nucleus_push_items": ""}, instance=stale
    )
    assert form.is_valid(), form.errors

    dataset_admin.save_model(request, form.save(commit=False), form, change=True)

    dataset.refresh_from_db()
    assert dataset.name == "Clothes"
    assert dataset.taxonomies_revision == stale.taxonomies_revision + 1
    assert "jacket" in taxonomies_by_name_cached(dataset=dataset)["clothing_type"].label_names()


def test_a_taxonomy_created_in_the_admin_is_logged_with_its_labels(admin_client, superuser, dataset):
    response = admin_client.post(
        reverse("admin:taxonomies_taxonomy_add"),
        taxonomy_form(
            {"dataset": str(dataset.id), "taxonomy_name": "clothing_type", "type": "category", "applies_to": "items", "required": "on"},
            [{"name": "shirt", "hotkey": "", "position": "2"}, {"name": "pants", "hotkey": "", "position": "1"}],
        ),
    )

    assert response.status_code == 302
    taxonomy = Taxonomy.objects.get(taxonomy_name="clothing_type")
    assert response["Location"] == reverse("admin:taxonomies_taxonomy_changelist")
    assert taxonomy.label_names() == ["pants", "shirt"]
    event = AuditEvent.objects.get(action=AuditEvent.Action.TAXONOMY_CREATE)
    assert (event.actor, event.target_id, event.after["labels"]) == (superuser, taxonomy.pk, ["pants", "shirt"])


def test_a_taxonomy_renamed_in_the_admin_is_logged_and_bumps_the_taxonomies_revision(admin_client, superuser, clothing_type):
    dataset = clothing_type.dataset
    dataset.refresh_from_db()
    revision = dataset.taxonomies_revision
    rows = existing_rows(clothing_type)
    fields = {**change_fields(clothing_type), "taxonomy_name": "garment", "required": ""}

    response = admin_client.post(change_url(clothing_type), taxonomy_form(fields, rows, initial=3))

    assert response.status_code == 302
    clothing_type.refresh_from_db()
    assert (clothing_type.taxonomy_name, clothing_type.required) == ("garment", False)
    event = AuditEvent.objects.get(action=AuditEvent.Action.TAXONOMY_UPDATE)
    assert event.actor == superuser
    assert (event.before["taxonomy_name"], event.after["taxonomy_name"]) == ("clothing_type", "garment")
    assert (event.before["required"], event.after["required"]) == (True, False)
    dataset.refresh_from_db()
    assert dataset.taxonomies_revision > revision


def test_a_taxonomy_renamed_in_the_admin_is_refused_when_the_name_is_taken(admin_client, clothing_type):
    taxonomy_create(dataset=clothing_type.dataset, taxonomy_name="color", labels=["red"])
    fields = {**change_fields(clothing_type), "taxonomy_name": "color"}

    response = admin_client.post(change_url(clothing_type), taxonomy_form(fields, existing_rows(clothing_type), initial=3))

    assert response.status_code == 200
    clothing_type.refresh_from_db()
    assert clothing_type.taxonomy_name == "clothing_type"


def test_a_datasets_kind_is_read_only_once_it_exists(admin_client, dataset):
    page = admin_client.get(reverse("admin:labeling_dataset_change", args=[dataset.id])).content.decode()
    assert 'name="kind"' not in page
    assert 'name="kind"' in admin_client.get(reverse("admin:labeling_dataset_add")).content.decode()
