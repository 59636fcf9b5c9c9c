"""Multi-label answers record the classes their labeler was shown, on every write path, and speak
for those alone; ask-new-classes/ sends finished items back for the classes added since; single-label
taxonomies whose labels were appended change nothing for older answers."""

import json

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.urls import reverse

from audit.models import AuditEvent
from labeling.models import CategoryAnnotation, Task
from labeling.services.annotations import annotation_save
from labeling.services.taxonomy_removals import label_remove
from labeling.services.new_classes import taxonomy_ask_new_classes
from taxonomies.services import taxonomy_add_labels
from tests.labeling.api.support import answer, errors_of, row_counts, url

pytestmark = pytest.mark.django_db


def ids(taxonomy, *names) -> list[int]:
    return sorted(taxonomy.labels.filter(name__in=names).values_list("id", flat=True))


def stored(item, taxonomy) -> CategoryAnnotation:
    return CategoryAnnotation.objects.prefetch_related("labels").get(item=item, taxonomy=taxonomy)


def export_lines(client, dataset) -> list[dict]:
    body = b"".join(client.get(url("export", dataset_id=dataset.id)).streaming_content).decode()
    return [json.loads(line) for line in body.splitlines()]


def binary(lines, reference_id: str) -> dict[str, str]:
    return {line["taxonomy_name"]: line["label"] for line in lines if line["reference_id"] == reference_id and ":" in line["taxonomy_name"]}


def import_rows(client, dataset, *rows):
    return client.post(url("annotation-list", dataset_id=dataset.id), list(rows), format="json")


def ask(client, dataset, taxonomy_name, body=None):
    return client.post(
        url("taxonomy-ask-new-classes", dataset_id=dataset.id, taxonomy_name=taxonomy_name), body or {}, format="json"
    )


class TestTheClassesShownAreRecorded:
    def test_an_import_without_shown_was_shown_every_current_class(self, admin_client, dataset, items, attributes):
        response = import_rows(admin_client, dataset, {"reference_id": "image_1", "taxonomy_name": "attributes", "labels": ["logo"]})

        assert response.status_code == 200
        assert stored(items[0], attributes).shown_label_ids == ids(attributes, "striped", "logo", "long_sleeves")

    def test_an_answer_with_shown_yields_payloads_for_those_classes_only(self, admin_client, dataset, items, attributes):
        row = {"reference_id": "image_1", "taxonomy_name": "attributes", "labels": ["logo"], "shown": ["logo", "striped"]}
        assert import_rows(admin_client, dataset, row).status_code == 200

        assert stored(items[0], attributes).shown_label_ids == ids(attributes, "striped", "logo")
        assert binary(export_lines(admin_client, dataset), "image_1") == {"attributes:striped": "False", "attributes:logo": "True"}

    def test_a_draft_records_the_classes_on_the_page(self, labeler_client, dataset, items, clothing_type, attributes):
        labeler_client.post(url("next", dataset_id=dataset.id))
        rows = [{"taxonomy_name": "attributes", "labels": ["striped"], "shown": ["striped", "logo"]}]
        response = labeler_client.post(url("draft", dataset_id=dataset.id), {"reference_id": "image_1", "annotations": rows}, format="json")

        assert response.status_code == 200
        draft = stored(items[0], attributes)
        assert (draft.status, draft.shown_label_ids) == ("draft", ids(attributes, "striped", "logo"))

    def test_a_page_loaded_before_a_class_was_added_does_not_answer_it(self, labeler_client, dataset, items, clothing_type, attributes):
        labeler_client.post(url("next", dataset_id=dataset.id))
        shown_then = ["striped", "logo", "long_sleeves"]
        taxonomy_add_labels(taxonomy=attributes, labels=["hood"])
        rows = [
            {"taxonomy_name": "clothing_type", "label": "shirt"},
            {"taxonomy_name": "attributes", "labels": [], "shown": shown_then},
        ]
        assert labeler_client.post(url("submit", dataset_id=dataset.id), {"reference_id": "image_1", "annotations": rows}, format="json").status_code == 200

        assert "attributes:hood" not in binary(export_lines(labeler_client, dataset), "image_1")

    @pytest.mark.parametrize(
        "row, message",
        [
            ({"taxonomy_name": "attributes", "labels": ["logo"], "shown": ["striped"]}, "Chosen but not shown: logo"),
            ({"taxonomy_name": "attributes", "labels": [], "shown": ["plaid"]}, "Not a label of “attributes”: plaid"),
            ({"taxonomy_name": "attributes", "labels": [], "shown": "logo"}, "Give \"shown\" as a list of label names."),
            ({"taxonomy_name": "attributes", "labels": [], "shown": ["logo", "logo"]}, "A class is listed more than once."),
            ({"taxonomy_name": "clothing_type", "label": "shirt", "shown": ["shirt"]}, "single-label taxonomy"),
        ],
        ids=["chosen-not-shown", "unknown", "not-a-list", "twice", "single-label"],
    )
    def test_a_bad_shown_is_a_400_naming_the_row_and_nothing_is_stored(self, admin_client, dataset, items, clothing_type, attributes, row, message):
        before = row_counts()

        response = import_rows(admin_client, dataset, {"reference_id": "image_1", **row})

        assert response.status_code == 400
        (error,) = errors_of(response)
        assert (error["index"], error["field"]) == (0, "shown") and message in error["message"]
        assert row_counts() == before

    def test_a_relabel_target_becomes_shown_where_it_is_added(self, admin, labeler, dataset, items, attributes):
        answer(target=items[0], taxonomy=attributes, names=["striped"], annotator=labeler)
        (hood,) = taxonomy_add_labels(taxonomy=attributes, labels=["hood"])

        label_remove(label=attributes.labels.get(name="striped"), relabel_to=hood)

        relabelled = stored(items[0], attributes)
        assert relabelled.chosen_label_names() == ["hood"]
        assert hood.id in relabelled.shown_label_ids


class TestAskNewClasses:
    @pytest.fixture
    def finished(self, labeler, dataset, items, clothing_type, attributes):
        for item in items[:2]:
            answer(target=item, taxonomy=clothing_type, names=["shirt"], annotator=labeler)
            answer(target=item, taxonomy=attributes, names=["logo"], annotator=labeler)
        Task.objects.filter(item__in=items[:2]).update(state=Task.State.DONE, done_by=labeler)
        taxonomy_add_labels(taxonomy=attributes, labels=["hood", "zip"])
        return items[:2]

    def test_an_admin_sends_the_finished_items_back_for_just_the_new_classes(self, admin_client, admin, dataset, finished, attributes):
        versions = list(CategoryAnnotation.objects.order_by("id").values_list("id", "version", "sync_state"))

        response = ask(admin_client, dataset, "attributes")

        assert (response.status_code, response.json()) == (200, {"annotations": 2, "tasks_reopened": 2, "classes": ["hood", "zip"]})
        assert set(Task.objects.filter(item__in=finished).values_list("state", "holder", "done_by")) == {("open", None, None)}
        assert all(stored(item, attributes).asked_label_ids == ids(attributes, "hood", "zip") for item in finished)
        assert list(CategoryAnnotation.objects.order_by("id").values_list("id", "version", "sync_state")) == versions
        event = AuditEvent.objects.get(action=AuditEvent.Action.ANNOTATION_ASK_NEW_CLASSES)
        assert (event.actor, event.taxonomy_name, event.after) == (admin, "attributes", {"classes": ["hood", "zip"], "annotations": 2, "tasks_reopened": 2})

    def test_the_queue_says_which_classes_to_ask(self, admin_client, labeler_client, dataset, finished):
        ask(admin_client, dataset, "attributes")

        held = labeler_client.post(url("next", dataset_id=dataset.id)).json()

        assert {a["taxonomy_name"]: a.get("new_classes") for a in held["annotations"]} == {"clothing_type": None, "attributes": ["hood", "zip"]}

    def test_a_full_answer_without_shown_replaces_the_answer_and_ends_the_ask(self, admin_client, dataset, finished, attributes):
        ask(admin_client, dataset, "attributes")

        assert import_rows(admin_client, dataset, {"reference_id": "image_1", "taxonomy_name": "attributes", "labels": ["zip"]}).status_code == 200

        answered = stored(finished[0], attributes)
        assert (answered.chosen_label_names(), answered.asked_label_ids) == (["zip"], None)
        assert Task.objects.get(item=finished[0]).state == Task.State.DONE

    def test_an_answer_not_shown_the_asked_classes_leaves_them_asked(self, admin_client, dataset, finished, attributes):
        ask(admin_client, dataset, "attributes")
        version = stored(finished[0], attributes).version

        row = {"reference_id": "image_1", "taxonomy_name": "attributes", "labels": ["logo"], "shown": ["logo", "hood"]}
        assert import_rows(admin_client, dataset, row).status_code == 200

        answered = stored(finished[0], attributes)
        assert answered.asked_label_ids == ids(attributes, "zip")  # hood was answered (False), zip is still asked
        assert answered.version == version + 1
        assert import_rows(admin_client, dataset, {**row, "shown": ["logo"]}).status_code == 200
        assert stored(finished[0], attributes).version == version + 1  # the same answer again, zip unseen: nothing to send

    def test_asking_again_changes_nothing_and_only_some_items_can_be_asked(self, admin_client, dataset, finished, attributes):
        assert ask(admin_client, dataset, "attributes", {"reference_ids": ["image_2"]}).json()["annotations"] == 1
        assert ask(admin_client, dataset, "attributes", {"reference_ids": ["image_2"]}).json()["annotations"] == 0
        assert stored(finished[0], attributes).asked_label_ids is None

    def test_asking_again_reopens_a_task_an_import_closed_meanwhile(self, admin_client, dataset, finished):
        ask(admin_client, dataset, "attributes")
        import_rows(admin_client, dataset, {"reference_id": "image_1", "taxonomy_name": "clothing_type", "label": "pants"})
        assert Task.objects.get(item=finished[0]).state == Task.State.DONE

        again = ask(admin_client, dataset, "attributes").json()

        assert (again["annotations"], again["tasks_reopened"]) == (0, 1)
        assert Task.objects.get(item=finished[0]).state == Task.State.OPEN

    def test_an_unknown_reference_id_is_a_400(self, admin_client, dataset, finished):
        response = ask(admin_client, dataset, "attributes", {"reference_ids": ["image_9"]})
        assert response.status_code == 400 and errors_of(response)[0]["field"] == "reference_ids"

    def test_a_labeler_may_not(self, labeler_client, dataset, finished):
        assert ask(labeler_client, dataset, "attributes").status_code == 403
        assert not CategoryAnnotation.objects.filter(asked_label_ids__isnull=False).exists()

    def test_the_admin_action_does_the_same(self, client, dataset, finished, attributes):
        client.force_login(get_user_model().objects.create_superuser("root", "root@example.com", "x"))

        response = client.post(
            reverse("admin:taxonomies_taxonomy_changelist"), {"action": "ask_new_classes", "_selected_action": [attributes.pk]}, follow=True
        )

        assert "2 answer(s) sent back for the classes added since (hood, zip); 2 item(s) back in the queue" in response.content.decode()
        assert Task.objects.filter(item__in=finished, state=Task.State.OPEN).count() == 2


class TestSingleLabelTaxonomiesWithAppendedLabels:
    def test_older_answers_are_untouched_and_cannot_be_asked(self, admin_client, labeler, dataset, items, clothing_type):
        older = answer(target=items[0], taxonomy=clothing_type, names=["pants"], annotator=labeler).annotation
        Task.objects.filter(item=items[0]).update(state=Task.State.DONE, done_by=labeler)
        lines = export_lines(admin_client, dataset)

        taxonomy_add_labels(taxonomy=clothing_type, labels=["skirt"])
        response = ask(admin_client, dataset, "clothing_type")

        assert response.status_code == 400 and errors_of(response)[0]["field"] == "taxonomy_name"
        again = stored(items[0], clothing_type)
        assert (again.version, again.sync_state, again.shown_label_ids, again.asked_label_ids) == (older.version, older.sync_state, None, None)
        assert export_lines(admin_client, dataset) == lines
        assert Task.objects.get(item=items[0]).state == Task.State.DONE  # not sent back


def test_a_service_caller_s_shown_is_checked_as_the_api_s(dataset, items, attributes):
    logo, striped = attributes.labels.get(name="logo"), attributes.labels.get(name="striped")
    with pytest.raises(ValidationError, match="Chosen but not shown: logo"):
        annotation_save(target=items[0], taxonomy=attributes, labels=[logo], annotator=None, finished=True, shown=[striped])
    assert not CategoryAnnotation.objects.exists()


def test_the_service_refuses_a_single_label_taxonomy(clothing_type):
    with pytest.raises(ValidationError, match="single-label"):
        taxonomy_ask_new_classes(taxonomy=clothing_type)
