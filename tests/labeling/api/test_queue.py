"""datasets/{id}/next/, submit/ and skip/: the labeling queue, as a script sees it."""

import time
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from labeling.models import CategoryAnnotation, Dataset, DatasetMember, Task
from taxonomies.models import Label
from taxonomies.services import label_update, taxonomy_add_labels, taxonomy_create
from tests.factories import DatasetFactory, DatasetMemberFactory, UserFactory
from tests.labeling.api.support import errors_of, item_with_task, row_counts, token_client, url

pytestmark = pytest.mark.django_db

SHIRT = {"taxonomy_name": "clothing_type", "label": "shirt"}
STRIPED = {"taxonomy_name": "attributes", "labels": ["striped"]}


@pytest.fixture
def second_labeler(dataset):
    """dana, a second labeler of the dataset, to compete with bob for tasks."""
    return DatasetMemberFactory(dataset=dataset, user=UserFactory(username="dana"), role=DatasetMember.Role.LABELER).user


@pytest.fixture
def second_labeler_client(second_labeler):
    return token_client(second_labeler)


def next_task(client, dataset):
    return client.post(url("next", dataset_id=dataset.id))


def next_reference_id(client, dataset) -> str:
    response = next_task(client, dataset)
    assert response.status_code == 200
    return response.json()["reference_id"]


def submit(client, dataset, reference_id: str, annotations: list[dict]):
    return client.post(url("submit", dataset_id=dataset.id), {"reference_id": reference_id, "annotations": annotations}, format="json")


def skip(client, dataset, reference_id: str):
    return client.post(url("skip", dataset_id=dataset.id), {"reference_id": reference_id}, format="json")


class TestNext:
    def test_it_hands_out_the_first_item_under_a_lease(self, labeler_client, dataset, items, labeler, settings):
        settings.LABELING_LEASE_SECONDS = 300
        before = timezone.now()
        response = next_task(labeler_client, dataset)
        assert response.status_code == 200
        body = response.json()
        assert {key: value for key, value in body.items() if key != "lease_expires_at"} == {
            "reference_id": "image_1", "kind": "item", "image_url": "https://images.example.com/image_1.jpg",
            "video_url": None, "frames": None, "frame_rate": None, "metadata": {}, "annotations": [],
        }
        expires = parse_datetime(body["lease_expires_at"])
        assert before + timedelta(seconds=300) <= expires <= timezone.now() + timedelta(seconds=300)
        task = Task.objects.get(item=items[0])
        assert (task.holder, task.lease_expires_at) == (labeler, expires)

    def test_asking_again_returns_the_item_already_held(self, labeler_client, dataset, items):
        first = next_reference_id(labeler_client, dataset)
        assert next_reference_id(labeler_client, dataset) == first == "image_1"
        assert Task.objects.filter(holder__isnull=False).count() == 1

    def test_asking_again_renews_the_lease(self, labeler_client, dataset, items):
        next_task(labeler_client, dataset)
        Task.objects.filter(item=items[0]).update(lease_expires_at=timezone.now() + timedelta(seconds=5))
        renewed = parse_datetime(next_task(labeler_client, dataset).json()["lease_expires_at"])
        assert renewed > timezone.now() + timedelta(seconds=60)

    def test_two_labelers_get_different_items(self, labeler_client, second_labeler_client, dataset, items):
        assert (next_reference_id(labeler_client, dataset), next_reference_id(second_labeler_client, dataset)) == ("image_1", "image_2")

    def test_an_expired_lease_lets_another_labeler_take_the_item(self, labeler_client, second_labeler_client, dataset, items, second_labeler):
        next_task(labeler_client, dataset)
        Task.objects.filter(item=items[0]).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
        assert next_reference_id(second_labeler_client, dataset) == "image_1"
        assert Task.objects.get(item=items[0]).holder == second_labeler

    def test_taking_an_item_whose_lease_ran_out_records_its_previous_holder(
        self, labeler_client, second_labeler_client, dataset, items, labeler
    ):
        next_task(labeler_client, dataset)
        Task.objects.filter(item=items[0]).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
        assert next_reference_id(second_labeler_client, dataset) == "image_1"
        assert Task.objects.get(item=items[0]).previous_holder == labeler
        next_task(second_labeler_client, dataset)  # renewing one's own lease keeps it
        assert Task.objects.get(item=items[0]).previous_holder == labeler

    def test_taking_a_free_item_or_claiming_back_ones_own_lapsed_lease_leaves_the_previous_holder(
        self, labeler_client, second_labeler_client, dataset, items, labeler, second_labeler
    ):
        Task.objects.filter(item=items[1]).update(previous_holder=second_labeler)
        assert next_reference_id(labeler_client, dataset) == "image_1"  # nobody held it
        assert Task.objects.get(item=items[0]).previous_holder is None
        Task.objects.filter(item=items[0]).update(state=Task.State.DONE, holder=None, lease_expires_at=None)
        assert next_reference_id(labeler_client, dataset) == "image_2"
        Task.objects.filter(item=items[1]).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
        assert next_reference_id(labeler_client, dataset) == "image_2"  # bob's own lapsed lease, claimed back
        assert Task.objects.get(item=items[1]).previous_holder == second_labeler

    def test_with_a_zero_second_lease_another_labeler_takes_the_item_at_once(self, labeler_client, second_labeler_client, dataset, items, settings):
        settings.LABELING_LEASE_SECONDS = 0
        next_task(labeler_client, dataset)
        lease = Task.objects.get(item=items[0]).lease_expires_at
        # The lease ends at the very instant it was given: the second ask must come at a later one,
        # which a fast machine does not guarantee without waiting for the clock to tick.
        deadline = time.monotonic() + 5
        while timezone.now() <= lease:
            assert time.monotonic() < deadline, "the clock did not move"
            time.sleep(0.001)
        assert next_reference_id(second_labeler_client, dataset) == "image_1"

    def test_an_empty_queue_answers_204(self, labeler_client, dataset):
        response = next_task(labeler_client, dataset)
        assert (response.status_code, response.content) == (204, b"")

    def test_a_queue_whose_items_are_all_done_answers_204(self, labeler_client, dataset, items):
        Task.objects.update(state=Task.State.DONE)
        assert next_task(labeler_client, dataset).status_code == 204

    def test_a_scene_dataset_hands_out_a_scene_with_its_frames_in_order(self, admin_client, labeler_client, scene_dataset):
        frames = [{"reference_id": f"d1_f{n}", "image_url": f"https://images.example.com/d1_f{n}.jpg"} for n in range(3)]
        admin_client.post(url("scene-list", dataset_id=scene_dataset.id), [{"reference_id": "drive_1", "frame_rate": 5, "frames": frames}], format="json")
        body = next_task(labeler_client, scene_dataset).json()
        assert {key: value for key, value in body.items() if key != "lease_expires_at"} == {
            "reference_id": "drive_1", "kind": "scene", "image_url": None, "video_url": None,
            "frames": frames, "frame_rate": 5.0, "metadata": {}, "annotations": [],
        }


class TestSubmit:
    @pytest.fixture(autouse=True)
    def taxonomies(self, clothing_type, attributes):
        """Two required taxonomies: clothing_type (single-label) and attributes (multi-label)."""

    def test_it_stores_the_answers_as_finished_annotations_and_closes_the_task(self, labeler_client, dataset, items, labeler):
        next_task(labeler_client, dataset)
        response = submit(labeler_client, dataset, "image_1", [SHIRT, {**STRIPED, "metadata": {"confidence": "high"}}])
        assert response.status_code == 200
        assert [(row["reference_id"], row["taxonomy_name"], row["label"], row["labels"], row["metadata"], row["status"]) for row in response.json()] == [
            ("image_1", "clothing_type", "shirt", None, {}, "finished"),
            ("image_1", "attributes", None, ["striped"], {"confidence": "high"}, "finished"),
        ]
        task = Task.objects.get(item=items[0])
        assert (task.state, task.holder, task.done_by) == (Task.State.DONE, None, labeler)

    def test_the_next_item_after_a_submit_is_a_new_one(self, labeler_client, dataset, items):
        next_task(labeler_client, dataset)
        submit(labeler_client, dataset, "image_1", [SHIRT, STRIPED])
        assert next_reference_id(labeler_client, dataset) == "image_2"

    def test_it_refuses_an_answer_missing_a_required_taxonomy_and_names_it(self, labeler_client, dataset, items, labeler):
        next_task(labeler_client, dataset)
        before = row_counts()
        response = submit(labeler_client, dataset, "image_1", [SHIRT])
        assert response.status_code == 400
        assert errors_of(response) == [{"field": "attributes", "message": "“attributes” is required: choose a label."}]
        assert row_counts() == before
        assert Task.objects.get(item=items[0]).holder == labeler

    def test_an_optional_taxonomy_may_be_left_out(self, labeler_client, dataset, items, attributes):
        attributes.required = False
        attributes.save()
        next_task(labeler_client, dataset)
        assert submit(labeler_client, dataset, "image_1", [SHIRT]).status_code == 200

    def test_it_refuses_a_taxonomy_answered_twice(self, labeler_client, dataset, items):
        before = row_counts()
        response = submit(labeler_client, dataset, "image_1", [SHIRT, STRIPED, {**SHIRT, "label": "pants"}])
        assert errors_of(response) == [{"field": "annotations", "message": "“clothing_type” is answered more than once."}]
        assert row_counts() == before

    def test_it_names_the_answer_whose_label_is_unknown(self, labeler_client, dataset, items):
        before = row_counts()
        response = submit(labeler_client, dataset, "image_1", [STRIPED, {**SHIRT, "label": "hat"}])
        assert response.status_code == 400
        assert [(error.get("index"), error["field"]) for error in errors_of(response)] == [(1, "label")]
        assert row_counts() == before

    def test_it_refuses_an_unknown_reference_id(self, labeler_client, dataset, items):
        response = submit(labeler_client, dataset, "image_9", [SHIRT, STRIPED])
        assert errors_of(response) == [{"field": "reference_id", "message": "No item or scene of this dataset has reference_id 'image_9'."}]
        assert not CategoryAnnotation.objects.exists()

    def test_it_refuses_a_submit_without_annotations(self, labeler_client, dataset, items):
        response = labeler_client.post(url("submit", dataset_id=dataset.id), {"reference_id": "image_1"}, format="json")
        assert errors_of(response) == [{"field": "annotations", "message": "This field is required."}]

    def test_it_names_the_answer_that_is_not_an_object(self, labeler_client, dataset, items):
        response = submit(labeler_client, dataset, "image_1", [SHIRT, "striped"])
        assert (response.status_code, [error["field"] for error in errors_of(response)]) == (400, ["annotations[1]"])

    def test_it_names_an_unknown_field_of_an_answer(self, labeler_client, dataset, items):
        response = submit(labeler_client, dataset, "image_1", [STRIPED, {**SHIRT, "metdata": {"confidence": "high"}}])
        assert response.status_code == 400
        assert [(error.get("index"), error["field"]) for error in errors_of(response)] == [(1, "metdata")]

    def test_it_refuses_with_409_an_item_another_labeler_holds(self, labeler_client, second_labeler_client, dataset, items, second_labeler):
        next_task(second_labeler_client, dataset)
        before = row_counts()
        response = submit(labeler_client, dataset, "image_1", [SHIRT, STRIPED])
        assert response.status_code == 409
        assert errors_of(response) == [{"field": "reference_id", "message": "Another labeler holds this task now."}]
        assert row_counts() == before
        assert Task.objects.get(item=items[0]).holder == second_labeler

    def test_once_the_lease_expired_and_another_labeler_took_the_item_the_first_one_gets_409(self, labeler_client, second_labeler_client, dataset, items):
        next_task(labeler_client, dataset)
        Task.objects.filter(item=items[0]).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
        next_task(second_labeler_client, dataset)
        assert submit(labeler_client, dataset, "image_1", [SHIRT, STRIPED]).status_code == 409

    def test_going_back_to_change_your_own_finished_item_is_allowed(self, labeler_client, dataset, items):
        reference_id = next_reference_id(labeler_client, dataset)
        submit(labeler_client, dataset, reference_id, [SHIRT, STRIPED])
        response = submit(labeler_client, dataset, reference_id, [{"taxonomy_name": "clothing_type", "label": "pants"}, STRIPED])
        assert response.status_code == 200
        assert CategoryAnnotation.objects.get(item__reference_id=reference_id, taxonomy__taxonomy_name="clothing_type").label.name == "pants"

    def test_a_labeler_cannot_change_an_item_another_labeler_finished(self, labeler_client, second_labeler_client, dataset, items):
        reference_id = next_reference_id(second_labeler_client, dataset)
        submit(second_labeler_client, dataset, reference_id, [SHIRT, STRIPED])
        response = submit(labeler_client, dataset, reference_id, [{"taxonomy_name": "clothing_type", "label": "pants"}, STRIPED])
        assert response.status_code == 403
        assert CategoryAnnotation.objects.get(item__reference_id=reference_id, taxonomy__taxonomy_name="clothing_type").label.name == "shirt"

    def test_an_admin_can_change_an_item_a_labeler_finished(self, admin_client, labeler_client, dataset, items):
        reference_id = next_reference_id(labeler_client, dataset)
        submit(labeler_client, dataset, reference_id, [SHIRT, STRIPED])
        response = submit(admin_client, dataset, reference_id, [{"taxonomy_name": "clothing_type", "label": "pants"}, STRIPED])
        assert response.status_code == 200
        annotation = CategoryAnnotation.objects.get(item__reference_id=reference_id, taxonomy__taxonomy_name="clothing_type")
        assert (annotation.label.name, annotation.version) == ("pants", 2)

    def test_a_scene_is_submitted_by_its_reference_id(self, admin_client, labeler_client, scene_dataset):
        taxonomy_create(dataset=scene_dataset, taxonomy_name="weather", labels=["sun", "rain"], applies_to="scenes")
        admin_client.post(url("scene-list", dataset_id=scene_dataset.id), [{"reference_id": "drive_1", "video_url": "https://v.example.com/1.mp4"}], format="json")
        next_task(labeler_client, scene_dataset)
        response = submit(labeler_client, scene_dataset, "drive_1", [{"taxonomy_name": "weather", "label": "rain"}])
        assert (response.status_code, [(row["reference_id"], row["label"]) for row in response.json()]) == (200, [("drive_1", "rain")])
        assert next_task(labeler_client, scene_dataset).status_code == 204


class TestSkip:
    def test_a_skipped_item_goes_to_the_end_of_the_labelers_queue(self, labeler_client, dataset, items):
        next_task(labeler_client, dataset)
        assert skip(labeler_client, dataset, "image_1").status_code == 204
        assert next_reference_id(labeler_client, dataset) == "image_2"

    def test_another_labeler_still_gets_the_skipped_item_first(self, labeler_client, second_labeler_client, dataset, items):
        next_task(labeler_client, dataset)
        skip(labeler_client, dataset, "image_1")
        assert next_reference_id(second_labeler_client, dataset) == "image_1"

    def test_a_skipped_item_comes_back_once_nothing_else_is_left(self, labeler_client, dataset):
        item_with_task(dataset, "image_1")
        next_task(labeler_client, dataset)
        skip(labeler_client, dataset, "image_1")
        assert next_reference_id(labeler_client, dataset) == "image_1"

    def test_it_refuses_an_unknown_reference_id(self, labeler_client, dataset, items):
        response = skip(labeler_client, dataset, "image_9")
        assert errors_of(response) == [{"field": "reference_id", "message": "No item or scene of this dataset has reference_id 'image_9'."}]


def queries_during(call) -> tuple[int, object]:
    with CaptureQueriesContext(connection) as captured:
        response = call()
    return len(captured), response


def labeling_dataset(*, name: str, labeler, taxonomies: int, labels: int, items: int) -> Dataset:
    """A dataset bob labels, with required single-label taxonomies t0..tN (labels l0..lM) and items."""
    dataset = DatasetFactory(name=name)
    DatasetMemberFactory(dataset=dataset, user=labeler, role=DatasetMember.Role.LABELER)
    for n in range(taxonomies):
        taxonomy_create(dataset=dataset, taxonomy_name=f"t{n}", labels=[f"l{m}" for m in range(labels)])
    for n in range(items):
        item_with_task(dataset, f"{name}_{n}")
    return dataset


def answers(dataset: Dataset) -> list[dict]:
    return [{"taxonomy_name": taxonomy.taxonomy_name, "label": "l0"} for taxonomy in dataset.taxonomies.all()]


class TestQueryCounts:
    """Counted inside the test's transaction, so atomic() blocks show as SAVEPOINT / RELEASE (in
    production they are BEGIN / COMMIT, which Django logs as queries too)."""

    # next, whatever the dataset holds:
    #  1. SELECT authtoken_token JOIN auth_user LEFT JOIN datasetmember, dataset
    #                                                       TokenAuthentication, with the dataset and role
    #  2. UPDATE labeling_task WHERE id = COALESCE(...)     renew bob's lease, else claim (compare-and-set)
    #  3. SELECT labeling_task JOIN item LEFT JOIN scene    the task, for the answer, and whether it has answers
    NEXT_QUERIES = 3
    # An item with annotations (a draft left, work to change): two more queries read them and the
    # chosen labels of multi-label ones.
    ANSWERS_READ_QUERIES = 2

    # submit of an item, whatever the number of taxonomies, labels and items, once the process has
    # the dataset's taxonomies in memory:
    #  1. SELECT authtoken_token JOIN auth_user LEFT JOIN datasetmember, dataset
    #                                                       TokenAuthentication, with the dataset (its
    #                                                       taxonomies_revision) and role
    #  2. SAVEPOINT                                         task_submit's atomic()
    #  3. UPDATE labeling_task SET state = 'done' ...       close the task unless another labeler holds it;
    #                                                       RETURNING whether the item has annotations
    #  4. INSERT labeling_categoryannotation ... ON CONFLICT DO NOTHING   every answer in one statement
    #  5. INSERT audit_auditevent                           the audit log: every finished answer in one statement
    #  6. RELEASE SAVEPOINT                                 end of task_submit's atomic()
    SUBMIT_QUERIES = 6
    # The first submit of a process (or after a taxonomy changed) reads the taxonomies and labels.
    TAXONOMY_READ_QUERIES = 2

    def test_next_takes_the_same_three_queries_with_5_taxonomies_and_200_items_as_with_1_and_10(self, labeler):
        client = token_client(labeler)
        small = labeling_dataset(name="small", labeler=labeler, taxonomies=1, labels=3, items=10)
        large = labeling_dataset(name="large", labeler=labeler, taxonomies=5, labels=40, items=200)
        small_count, small_response = queries_during(lambda: next_task(client, small))
        large_count, large_response = queries_during(lambda: next_task(client, large))
        assert (small_response.status_code, large_response.status_code) == (200, 200)
        assert small_count == large_count == self.NEXT_QUERIES

    def test_next_takes_the_same_queries_when_renewing_the_lease_of_a_held_item(self, labeler):
        client = token_client(labeler)
        dataset = labeling_dataset(name="small", labeler=labeler, taxonomies=1, labels=3, items=10)
        first = next_reference_id(client, dataset)
        count, response = queries_during(lambda: next_task(client, dataset))
        assert (response.json()["reference_id"], count) == (first, self.NEXT_QUERIES)

    def test_next_reads_the_answers_of_an_item_that_has_some(self, labeler):
        client = token_client(labeler)
        dataset = labeling_dataset(name="small", labeler=labeler, taxonomies=2, labels=3, items=10)
        first = next_reference_id(client, dataset)
        client.post(url("draft", dataset_id=dataset.id), {"reference_id": first, "annotations": [{"taxonomy_name": "t0", "label": "l1"}]}, format="json")
        count, response = queries_during(lambda: next_task(client, dataset))
        assert response.json()["annotations"] == [{"taxonomy_name": "t0", "label": "l1", "metadata": {}, "status": "draft"}]
        assert count == self.NEXT_QUERIES + self.ANSWERS_READ_QUERIES

    def test_next_for_a_scene_adds_one_query_for_its_frames(self, admin_client, labeler_client, scene_dataset):
        frames = [{"reference_id": f"f{n}", "image_url": f"https://images.example.com/f{n}.jpg"} for n in range(50)]
        admin_client.post(url("scene-list", dataset_id=scene_dataset.id), [{"reference_id": "drive_1", "frames": frames}], format="json")
        count, response = queries_during(lambda: next_task(labeler_client, scene_dataset))
        assert (response.status_code, count) == (200, self.NEXT_QUERIES + 1)

    def test_submit_takes_the_same_six_queries_with_200_items_and_40_labels_as_with_10_and_3(self, labeler):
        client = token_client(labeler)
        small = labeling_dataset(name="small", labeler=labeler, taxonomies=1, labels=3, items=10)
        large = labeling_dataset(name="large", labeler=labeler, taxonomies=1, labels=40, items=200)
        counts = []
        for dataset in (small, large):
            for _first_then_measured in range(2):
                reference_id, rows = next_reference_id(client, dataset), answers(dataset)
                count, response = queries_during(lambda: submit(client, dataset, reference_id, rows))
                assert response.status_code == 200
            counts.append(count)
        assert counts == [self.SUBMIT_QUERIES] * 2

    def test_the_first_submit_reads_the_taxonomies_and_a_changed_taxonomy_is_read_again(self, labeler):
        client = token_client(labeler)
        dataset = labeling_dataset(name="small", labeler=labeler, taxonomies=1, labels=3, items=10)
        add_label = lambda: taxonomy_add_labels(taxonomy=dataset.taxonomies.get(), labels=["new"])  # noqa: E731
        counts = []
        for label, change_first in (("l0", None), ("l0", None), ("new", add_label), ("new", None)):
            if change_first:
                change_first()
            reference_id = next_reference_id(client, dataset)
            count, response = queries_during(lambda: submit(client, dataset, reference_id, [{"taxonomy_name": "t0", "label": label}]))
            assert response.status_code == 200, response.content
            counts.append(count)
        read = self.SUBMIT_QUERIES + self.TAXONOMY_READ_QUERIES
        assert counts == [read, self.SUBMIT_QUERIES, read, self.SUBMIT_QUERIES]

    def test_a_cached_taxonomy_list_is_not_kept_after_a_label_is_renamed(self, labeler):
        client = token_client(labeler)
        dataset = labeling_dataset(name="small", labeler=labeler, taxonomies=1, labels=3, items=10)
        submit(client, dataset, next_reference_id(client, dataset), [{"taxonomy_name": "t0", "label": "l0"}])
        label = Label.objects.get(taxonomy__dataset=dataset, name="l1")
        label_update(label=label, name="renamed", hotkey="", position=label.position)
        response = submit(client, dataset, next_reference_id(client, dataset), [{"taxonomy_name": "t0", "label": "l1"}])
        assert response.status_code == 400
        assert "Not a label of “t0”: l1" in errors_of(response)[0]["message"]

    def test_submit_does_not_take_more_queries_with_5_taxonomies_than_with_1(self, labeler):
        client = token_client(labeler)
        small = labeling_dataset(name="small", labeler=labeler, taxonomies=1, labels=3, items=10)
        large = labeling_dataset(name="large", labeler=labeler, taxonomies=5, labels=3, items=200)
        counts = []
        for dataset in (small, large):
            reference_id, rows = next_reference_id(client, dataset), answers(dataset)
            count, response = queries_during(lambda: submit(client, dataset, reference_id, rows))
            assert response.status_code == 200
            counts.append(count)
        assert counts[1] == counts[0]
