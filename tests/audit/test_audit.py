"""The audit log: which changes write an event (finished annotations, taxonomies and labels), by whom,
in how many statements; and the dataset's audit page, for its admins only."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from audit.models import AuditEvent
from labeling.services.annotations import Answer, annotation_save, answers_save
from labeling.services.taxonomy_removals import label_remove, taxonomy_remove
from taxonomies.services import label_delete, label_update, taxonomy_add_labels, taxonomy_create, taxonomy_reorder_labels, taxonomy_update
from tests.factories import ItemFactory
from tests.labeling.api.support import token_client

pytestmark = pytest.mark.django_db

Action = AuditEvent.Action


@pytest.fixture
def clothing(dataset):
    return taxonomy_create(dataset=dataset, taxonomy_name="clothing", labels=["shirt", "pants"])


@pytest.fixture
def item(dataset):
    return ItemFactory(dataset=dataset, reference_id="img-1")


def audit_inserts(queries) -> int:
    return sum('INSERT INTO "audit_auditevent"' in query["sql"] for query in queries)


def events(dataset) -> list[tuple]:
    return list(AuditEvent.objects.filter(dataset=dataset).order_by("id").values_list("action", "actor_username", "reference_id", "taxonomy_name", "before", "after"))


class TestAnnotations:
    def test_a_finished_annotation_is_recorded_with_its_annotator_and_labels(self, dataset, clothing, item, labeler):
        AuditEvent.objects.all().delete()
        annotation_save(target=item, taxonomy=clothing, labels=[clothing.labels.get(name="shirt")], annotator=labeler, finished=True, metadata={"k": "v"})
        assert events(dataset) == [
            (Action.ANNOTATION_CREATE, "bob", "img-1", "clothing", None, {"labels": ["shirt"], "metadata": {"k": "v"}, "version": 1}),
        ]

    def test_a_change_records_the_state_before_and_after(self, dataset, clothing, item, labeler, admin):
        shirt, pants = clothing.labels.get(name="shirt"), clothing.labels.get(name="pants")
        annotation_save(target=item, taxonomy=clothing, labels=[shirt], annotator=labeler, finished=True)
        AuditEvent.objects.all().delete()
        annotation_save(target=item, taxonomy=clothing, labels=[pants], annotator=admin, finished=True)
        assert events(dataset) == [
            (Action.ANNOTATION_CHANGE, "alice", "img-1", "clothing",
             {"labels": ["shirt"], "metadata": {}, "version": 1}, {"labels": ["pants"], "metadata": {}, "version": 2}),
        ]

    def test_saving_the_same_answer_again_writes_nothing(self, dataset, clothing, item, labeler):
        shirt = clothing.labels.get(name="shirt")
        annotation_save(target=item, taxonomy=clothing, labels=[shirt], annotator=labeler, finished=True)
        before = AuditEvent.objects.count()
        with CaptureQueriesContext(connection) as queries:
            annotation_save(target=item, taxonomy=clothing, labels=[shirt], annotator=labeler, finished=True)
        assert AuditEvent.objects.count() == before
        assert audit_inserts(queries) == 0

    def test_drafts_are_not_recorded(self, dataset, clothing, item, labeler):
        AuditEvent.objects.all().delete()
        annotation_save(target=item, taxonomy=clothing, labels=[clothing.labels.get(name="shirt")], annotator=labeler, finished=False)
        assert events(dataset) == []

    @pytest.mark.parametrize("surely_new", [False, True])
    def test_a_save_of_several_taxonomies_records_them_in_one_insert(self, dataset, item, labeler, surely_new):
        taxonomies = [taxonomy_create(dataset=dataset, taxonomy_name=f"t{n}", labels=["a", "b"]) for n in range(4)]
        AuditEvent.objects.all().delete()
        answers = [Answer(target=item, taxonomy=taxonomy, labels=[taxonomy.labels.get(name="a")], metadata={}) for taxonomy in taxonomies]
        with CaptureQueriesContext(connection) as queries:
            answers_save(target=item, answers=answers, annotator=labeler, finished=True, surely_new=surely_new)
        assert audit_inserts(queries) == 1
        assert [event[3] for event in events(dataset)] == ["t0", "t1", "t2", "t3"]

    def test_removing_a_used_label_records_the_relabelled_annotations(self, dataset, clothing, item, labeler):
        shirt, pants = clothing.labels.get(name="shirt"), clothing.labels.get(name="pants")
        saved = annotation_save(target=item, taxonomy=clothing, labels=[shirt], annotator=labeler, finished=True)
        AuditEvent.objects.all().delete()
        label_remove(label=shirt, relabel_to=pants)
        assert [event[0] for event in events(dataset)] == [Action.ANNOTATION_RELABEL, Action.LABEL_DELETE]
        relabel = AuditEvent.objects.get(action=Action.ANNOTATION_RELABEL)
        assert relabel.after == {"label": "pants", "annotation_ids": [saved.annotation.id]}

    def test_deleting_a_taxonomy_records_what_went_with_it(self, dataset, clothing, item, labeler):
        annotation_save(target=item, taxonomy=clothing, labels=[clothing.labels.get(name="shirt")], annotator=labeler, finished=True)
        taxonomy_remove(taxonomy=clothing, confirm=True)
        deletion = AuditEvent.objects.get(action=Action.TAXONOMY_DELETE)
        assert (deletion.taxonomy_name, deletion.before) == ("clothing", {"annotations": 1, "finished_annotations": 1})


class TestTaxonomies:
    def test_every_taxonomy_service_records_its_change(self, dataset):
        taxonomy = taxonomy_create(dataset=dataset, taxonomy_name="colour", labels=["red"])
        taxonomy_update(taxonomy=taxonomy, taxonomy_name="color", applies_to=taxonomy.applies_to, required=False, position=taxonomy.position)
        (blue,) = taxonomy_add_labels(taxonomy=taxonomy, labels=["red", "blue"])
        label_update(label=blue, name="navy", hotkey="n", position=blue.position)
        taxonomy_reorder_labels(taxonomy=taxonomy, label_ids=[blue.id, taxonomy.labels.get(name="red").id])
        blue_id = blue.id
        label_delete(label=blue)
        assert [(event[0], event[3]) for event in events(dataset)] == [
            (Action.TAXONOMY_CREATE, "colour"), (Action.TAXONOMY_UPDATE, "color"), (Action.LABEL_ADD, "color"),
            (Action.LABEL_UPDATE, "color"), (Action.LABEL_REORDER, "color"), (Action.LABEL_DELETE, "color"),
        ]
        update = AuditEvent.objects.get(action=Action.TAXONOMY_UPDATE)
        assert (update.before["taxonomy_name"], update.after["taxonomy_name"], update.after["required"]) == ("colour", "color", False)
        assert AuditEvent.objects.get(action=Action.LABEL_ADD).after == {"labels": ["blue"]}
        assert AuditEvent.objects.get(action=Action.LABEL_DELETE).target_id == blue_id

    def test_an_update_that_changes_nothing_is_not_recorded(self, dataset, clothing):
        taxonomy_update(taxonomy=clothing, taxonomy_name="clothing", applies_to=clothing.applies_to, required=clothing.required, position=clothing.position)
        assert [event[0] for event in events(dataset)] == [Action.TAXONOMY_CREATE]

    def test_the_actor_of_an_api_change_is_the_token_user(self, dataset, admin):
        response = token_client(admin).post(
            f"/api/v1/datasets/{dataset.id}/taxonomies/", {"taxonomy_name": "size", "type": "category", "labels": ["s", "m"]}, format="json"
        )
        assert response.status_code == 201, response.content
        event = AuditEvent.objects.get(action=Action.TAXONOMY_CREATE)
        assert (event.actor, event.actor_username, event.after["labels"]) == (admin, "alice", ["s", "m"])

    def test_a_change_outside_a_request_has_no_actor(self, dataset, clothing):
        assert AuditEvent.objects.get(action=Action.TAXONOMY_CREATE).actor is None


def audit_url(dataset) -> str:
    return f"/datasets/{dataset.id}/audit/"


class TestAuditPage:
    @pytest.fixture
    def history(self, dataset, item, labeler, admin):
        """Five events: the taxonomy's creation, then four changes of one annotation by bob and alice."""
        taxonomy = taxonomy_create(dataset=dataset, taxonomy_name="clothing", labels=["shirt", "pants"])
        shirt, pants = taxonomy.labels.get(name="shirt"), taxonomy.labels.get(name="pants")
        for user, label in [(labeler, shirt), (admin, pants), (labeler, shirt), (admin, pants)]:
            annotation_save(target=item, taxonomy=taxonomy, labels=[label], annotator=user, finished=True)
        return list(AuditEvent.objects.filter(dataset=dataset).order_by("-id").values_list("id", flat=True))

    def shown_ids(self, response) -> list[int]:
        return [event.id for event in response.context["events"]]

    def test_an_admin_sees_the_events_newest_first(self, client, dataset, admin, history):
        client.force_login(admin)
        response = client.get(audit_url(dataset))
        assert response.status_code == 200
        assert self.shown_ids(response) == history
        assert b"finished annotation changed" in response.content

    def test_a_labeler_is_refused_and_an_outsider_does_not_learn_it_exists(self, client, dataset, labeler, outsider):
        client.force_login(labeler)
        assert client.get(audit_url(dataset)).status_code == 403
        client.force_login(outsider)
        assert client.get(audit_url(dataset)).status_code == 404

    def test_it_filters_by_actor_action_and_reference_id(self, client, dataset, admin, history):
        client.force_login(admin)
        assert self.shown_ids(client.get(audit_url(dataset), {"actor": "bob"})) == [history[1], history[3]]
        assert self.shown_ids(client.get(audit_url(dataset), {"action": Action.TAXONOMY_CREATE})) == [history[4]]
        assert self.shown_ids(client.get(audit_url(dataset), {"reference_id": "img-1", "action": Action.ANNOTATION_CREATE})) == [history[3]]
        assert self.shown_ids(client.get(audit_url(dataset), {"reference_id": "other"})) == []

    def test_it_pages_by_key(self, client, dataset, admin, history, monkeypatch):
        monkeypatch.setattr("audit.views.EVENTS_PER_PAGE", 2)
        client.force_login(admin)
        pages, before = [], ""
        while True:
            response = client.get(audit_url(dataset), {"before": before} if before else {})
            pages.append(self.shown_ids(response))
            if response.context["next_before"] is None:
                break
            before = response.context["next_before"]
        assert pages == [history[0:2], history[2:4], history[4:]]

    def test_the_next_page_keeps_the_filters(self, client, dataset, admin, history, monkeypatch):
        monkeypatch.setattr("audit.views.EVENTS_PER_PAGE", 2)
        client.force_login(admin)
        first = client.get(audit_url(dataset), {"action": Action.ANNOTATION_CHANGE})
        assert self.shown_ids(first) == history[0:2]
        assert f"action=annotation.change&amp;before={history[1]}".encode() in first.content
        second = client.get(audit_url(dataset), {"action": Action.ANNOTATION_CHANGE, "before": history[1]})
        assert self.shown_ids(second) == [history[2]]

    def test_the_page_takes_four_queries_whatever_the_number_of_events(self, client, dataset, admin, history, django_assert_num_queries):
        client.force_login(admin)
        #  1. SELECT django_session                  the session
        #  2. SELECT auth_user                       the signed-in user
        #  3. SELECT labeling_dataset JOIN member    dataset_get_for_admin (with the role)
        #  4. SELECT audit_auditevent ... LIMIT 51   audit_event_page, newest first
        with django_assert_num_queries(4):
            response = client.get(audit_url(dataset))
        assert len(response.context["events"]) == len(history)

    def test_the_django_admin_shows_the_log_read_only(self, client, superuser, history):
        client.force_login(superuser)
        assert client.get("/admin/audit/auditevent/").status_code == 200
        assert client.get(f"/admin/audit/auditevent/{history[0]}/change/").status_code == 200
        assert client.get("/admin/audit/auditevent/add/").status_code == 403
        assert client.post(f"/admin/audit/auditevent/{history[0]}/delete/").status_code == 403
