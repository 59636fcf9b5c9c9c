"""What the labeling page adds to the queue API: the current answers in next/, draft/, tasks/<reference_id>/
for going back, and ahead/ for preloading images."""

from datetime import timedelta

import pytest
from django.db import connection
from rest_framework import serializers
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from labeling.api.annotations import AnnotationOutput
from labeling.api.queue import TaskOutput, TaskWithAnswersOutput
from labeling.models import CategoryAnnotation, DatasetMember, Task, TaskSkip
from labeling.services.items import scene_create
from labeling.services.ownership import NOT_HANDED_OUT
from taxonomies.services import taxonomy_create
from tests.factories import DatasetMemberFactory, UserFactory
from tests.labeling.api.support import answer, errors_of, item_with_task, row_counts, token_client, url

pytestmark = pytest.mark.django_db

SHIRT = {"taxonomy_name": "clothing_type", "label": "shirt"}
STRIPED = {"taxonomy_name": "attributes", "labels": ["striped"]}


@pytest.fixture(autouse=True)
def taxonomies(clothing_type, attributes):
    """Two required taxonomies: clothing_type (single-label) and attributes (multi-label)."""


@pytest.fixture
def second_labeler_client(dataset):
    dana = DatasetMemberFactory(dataset=dataset, user=UserFactory(username="dana"), role=DatasetMember.Role.LABELER).user
    return token_client(dana)


def next_task(client, dataset):
    return client.post(url("next", dataset_id=dataset.id))


def draft(client, dataset, reference_id: str, annotations: list[dict]):
    return client.post(url("draft", dataset_id=dataset.id), {"reference_id": reference_id, "annotations": annotations}, format="json")


def submit(client, dataset, reference_id: str, annotations: list[dict]):
    return client.post(url("submit", dataset_id=dataset.id), {"reference_id": reference_id, "annotations": annotations}, format="json")


def task_detail(client, dataset, reference_id: str):
    return client.get(url("task-detail", dataset_id=dataset.id, reference_id=reference_id))


def ahead(client, dataset, **params):
    return client.get(url("ahead", dataset_id=dataset.id), params)


def queries_during(call) -> tuple[int, object]:
    with CaptureQueriesContext(connection) as captured:
        response = call()
    return len(captured), response


class TestNextAnnotations:
    def test_next_returns_the_draft_the_labeler_left_on_the_item_they_hold(self, labeler_client, dataset, items):
        next_task(labeler_client, dataset)
        draft(labeler_client, dataset, "image_1", [SHIRT, {**STRIPED, "metadata": {"note": "faint"}}])
        body = next_task(labeler_client, dataset).json()
        assert (body["reference_id"], body["annotations"]) == ("image_1", [
            {"taxonomy_name": "clothing_type", "label": "shirt", "metadata": {}, "status": "draft"},
            {"taxonomy_name": "attributes", "labels": ["striped"], "metadata": {"note": "faint"}, "status": "draft"},
        ])

    def test_next_returns_answers_finished_another_way_with_their_status(self, labeler_client, labeler, dataset, items, clothing_type):
        answer(target=items[0], taxonomy=clothing_type, names=["pants"], annotator=labeler)
        body = next_task(labeler_client, dataset).json()
        assert body["annotations"] == [{"taxonomy_name": "clothing_type", "label": "pants", "metadata": {}, "status": "finished"}]


class TestDraft:
    def test_it_keeps_unfinished_answers_and_the_lease(self, labeler_client, labeler, dataset, items):
        next_task(labeler_client, dataset)
        response = draft(labeler_client, dataset, "image_1", [SHIRT])
        assert response.status_code == 200
        assert [(row["taxonomy_name"], row["label"], row["status"]) for row in response.json()] == [("clothing_type", "shirt", "draft")]
        task = Task.objects.get(item=items[0])
        assert (task.state, task.holder) == (Task.State.OPEN, labeler)

    def test_a_single_label_taxonomy_may_be_left_without_a_label(self, labeler_client, dataset, items):
        next_task(labeler_client, dataset)
        draft(labeler_client, dataset, "image_1", [SHIRT])
        response = draft(labeler_client, dataset, "image_1", [{"taxonomy_name": "clothing_type", "label": None}])
        assert response.status_code == 200
        annotation = CategoryAnnotation.objects.get(item=items[0])
        assert (annotation.label, annotation.status) == (None, CategoryAnnotation.Status.DRAFT)

    def test_a_multi_label_answer_cleared_comes_back_unanswered_not_none_of_these(self, labeler_client, dataset, items):
        next_task(labeler_client, dataset)
        draft(labeler_client, dataset, "image_1", [SHIRT, STRIPED])
        response = draft(labeler_client, dataset, "image_1", [SHIRT, {"taxonomy_name": "attributes", "labels": None}])
        assert response.status_code == 200
        assert [row["taxonomy_name"] for row in next_task(labeler_client, dataset).json()["annotations"]] == ["clothing_type"]
        assert not CategoryAnnotation.objects.filter(item=items[0], taxonomy__taxonomy_name="attributes").exists()

    def test_none_of_these_stays_an_answer(self, labeler_client, dataset, items):
        next_task(labeler_client, dataset)
        draft(labeler_client, dataset, "image_1", [{"taxonomy_name": "attributes", "labels": []}])
        (row,) = next_task(labeler_client, dataset).json()["annotations"]
        assert (row["taxonomy_name"], row["labels"], row["status"]) == ("attributes", [], "draft")

    def test_labels_null_is_refused_for_a_single_label_taxonomy(self, labeler_client, dataset, items):
        next_task(labeler_client, dataset)
        response = draft(labeler_client, dataset, "image_1", [{"taxonomy_name": "clothing_type", "labels": None}])
        assert response.status_code == 400
        assert errors_of(response)[0]["field"] == "label"

    def test_clearing_leaves_a_finished_multi_label_answer_as_it_is(self, labeler_client, labeler, dataset, items, attributes):
        answer(target=items[0], taxonomy=attributes, names=["logo"], annotator=labeler)
        next_task(labeler_client, dataset)
        assert draft(labeler_client, dataset, "image_1", [{"taxonomy_name": "attributes", "labels": None}]).status_code == 200
        finished = CategoryAnnotation.objects.get(item=items[0], taxonomy=attributes)
        assert (finished.chosen_label_names(), finished.status) == (["logo"], "finished")

    def test_it_leaves_a_finished_answer_as_it_is(self, labeler_client, labeler, dataset, items, clothing_type):
        answer(target=items[0], taxonomy=clothing_type, names=["pants"], annotator=labeler)
        next_task(labeler_client, dataset)
        assert draft(labeler_client, dataset, "image_1", [SHIRT, STRIPED]).status_code == 200
        finished = CategoryAnnotation.objects.get(item=items[0], taxonomy=clothing_type)
        assert (finished.label.name, finished.status, finished.version) == ("pants", "finished", 1)
        assert CategoryAnnotation.objects.get(item=items[0], taxonomy__taxonomy_name="attributes").status == "draft"

    def test_it_refuses_with_409_a_draft_of_an_item_another_labeler_holds(self, labeler_client, second_labeler_client, dataset, items):
        next_task(second_labeler_client, dataset)
        before = row_counts()
        response = draft(labeler_client, dataset, "image_1", [SHIRT])
        assert (response.status_code, errors_of(response)) == (409, [{"field": "reference_id", "message": "Another labeler holds this task now."}])
        assert row_counts() == before

    def test_it_refuses_a_draft_of_an_item_nobody_holds(self, labeler_client, dataset, items):
        response = draft(labeler_client, dataset, "image_2", [SHIRT])
        assert (response.status_code, errors_of(response)) == (409, [{"field": "reference_id", "message": NOT_HANDED_OUT}])
        assert not CategoryAnnotation.objects.exists()

    def test_a_draft_that_arrives_after_its_submit_stores_nothing(self, labeler_client, dataset, items):
        """The page may send a debounced draft while submit/ is on its way: it must not reopen the item."""
        next_task(labeler_client, dataset)
        submit(labeler_client, dataset, "image_1", [SHIRT, STRIPED])
        before = row_counts()
        response = draft(labeler_client, dataset, "image_1", [{"taxonomy_name": "clothing_type", "label": None}])
        assert (response.status_code, response.json()) == (200, [])
        assert row_counts() == before
        assert Task.objects.get(item=items[0]).state == Task.State.DONE

    def test_it_names_the_answer_whose_label_is_unknown(self, labeler_client, dataset, items):
        next_task(labeler_client, dataset)
        response = draft(labeler_client, dataset, "image_1", [SHIRT, {**STRIPED, "labels": ["plaid"]}])
        assert response.status_code == 400
        assert [(error.get("index"), error["field"]) for error in errors_of(response)] == [(1, "labels")]
        assert not CategoryAnnotation.objects.exists()

    def test_a_draft_renews_the_lease(self, labeler_client, dataset, items):
        next_task(labeler_client, dataset)
        Task.objects.filter(item__reference_id="image_1").update(lease_expires_at=timezone.now() + timedelta(seconds=5))
        assert draft(labeler_client, dataset, "image_1", [SHIRT]).status_code == 200
        lease = Task.objects.get(item__reference_id="image_1").lease_expires_at
        assert lease > timezone.now() + timedelta(seconds=60)

    def test_a_draft_after_the_lease_ran_out_and_another_labeler_took_the_item_is_a_409(
        self, labeler_client, second_labeler_client, dataset, items
    ):
        next_task(labeler_client, dataset)
        Task.objects.filter(item__reference_id="image_1").update(lease_expires_at=timezone.now() - timedelta(seconds=1))
        assert next_task(second_labeler_client, dataset).json()["reference_id"] == "image_1"
        draft(second_labeler_client, dataset, "image_1", [SHIRT])

        response = draft(labeler_client, dataset, "image_1", [{**SHIRT, "label": "pants"}])

        assert response.status_code == 409
        assert CategoryAnnotation.objects.get().label.name == "shirt"

    # draft of one item with a single-label and multi-label answers, whatever their number, once the
    # process has the dataset's taxonomies in memory:
    #  1. SELECT authtoken_token JOIN auth_user LEFT JOIN datasetmember, dataset   TokenAuthentication, with the dataset
    #  2. SELECT labeling_task JOIN item LEFT JOIN scene    task_for_reference_id
    #  3. SAVEPOINT                                         task_draft_save's atomic()
    #  4. UPDATE labeling_task SET lease_expires_at ...     still bob's? (compare-and-set, renews the lease)
    #  5. SELECT labeling_categoryannotation.taxonomy_id    finished answers it must not touch
    #  6. SELECT labeling_categoryannotation FOR UPDATE     answers_save: the existing annotations, locked
    #  7. INSERT labeling_categoryannotation                ... every new one in one statement
    #  8. INSERT labeling_annotationlabel                   ... the chosen labels of multi-label answers
    #  9. RELEASE SAVEPOINT
    # 10. SELECT taxonomies_label JOIN annotationlabel      the answer: chosen labels of every multi-label annotation
    DRAFT_QUERIES = 10

    def test_a_draft_takes_ten_queries_with_three_multi_label_answers_as_with_one(self, labeler_client, dataset, items):
        for name in ("colors", "materials"):
            taxonomy_create(dataset=dataset, taxonomy_name=name, labels=["a", "b"], multi_label=True)
        several = [SHIRT, STRIPED, {"taxonomy_name": "colors", "labels": ["a"]}, {"taxonomy_name": "materials", "labels": ["b"]}]
        next_task(labeler_client, dataset)
        draft(labeler_client, dataset, "image_1", [SHIRT])  # the taxonomies are read once per process
        counts = []
        for rows in ([SHIRT, STRIPED], several):
            CategoryAnnotation.objects.all().delete()
            count, response = queries_during(lambda: draft(labeler_client, dataset, "image_1", rows))
            assert response.status_code == 200
            counts.append(count)
        assert counts == [self.DRAFT_QUERIES] * 2


def submit_and_next(client, dataset, reference_id: str, annotations: list[dict]):
    return client.post(url("submit-and-next", dataset_id=dataset.id), {"reference_id": reference_id, "annotations": annotations}, format="json")


class TestSubmitAndNext:
    def test_it_stores_the_answers_and_hands_out_the_next_item(self, labeler_client, labeler, dataset, items):
        next_task(labeler_client, dataset)
        response = submit_and_next(labeler_client, dataset, "image_1", [SHIRT, STRIPED])
        assert response.status_code == 200
        body = response.json()
        assert [(row["reference_id"], row["taxonomy_name"], row["status"]) for row in body["annotations"]] == [
            ("image_1", "clothing_type", "finished"), ("image_1", "attributes", "finished"),
        ]
        assert (body["next"]["reference_id"], body["next"]["annotations"]) == ("image_2", [])
        assert Task.objects.get(item=items[0]).state == Task.State.DONE
        assert Task.objects.get(item=items[1]).holder == labeler

    def test_next_is_null_after_the_last_item(self, labeler_client, dataset):
        item_with_task(dataset, "image_1")
        next_task(labeler_client, dataset)
        assert submit_and_next(labeler_client, dataset, "image_1", [SHIRT, STRIPED]).json()["next"] is None

    def test_a_refused_submit_takes_nothing_new(self, labeler_client, labeler, dataset, items):
        next_task(labeler_client, dataset)
        before = row_counts()
        response = submit_and_next(labeler_client, dataset, "image_1", [STRIPED])
        assert (response.status_code, [error["field"] for error in errors_of(response)]) == (400, ["clothing_type"])
        assert row_counts() == before
        assert list(Task.objects.filter(holder=labeler).values_list("item__reference_id", flat=True)) == ["image_1"]

    def test_an_item_another_labeler_holds_is_a_409_and_nothing_is_taken(self, labeler_client, second_labeler_client, dataset, items):
        next_task(second_labeler_client, dataset)
        assert submit_and_next(labeler_client, dataset, "image_1", [SHIRT, STRIPED]).status_code == 409
        assert Task.objects.filter(holder__isnull=False).count() == 1

    # submit-and-next of an item, whatever the number of taxonomies, once the process has the
    # dataset's taxonomies in memory:
    #  1-6. the six queries of submit/ (test_queue.py: TestQueryCounts.SUBMIT_QUERIES; the 5th is the audit log's INSERT)
    #  7. SELECT taxonomies_label JOIN annotationlabel      the answer: chosen labels of the multi-label answers
    #  8. UPDATE labeling_task WHERE id = COALESCE(...)     claim the next free task
    #  9. SELECT labeling_task JOIN item LEFT JOIN scene    the claimed task (it has no answers)
    SUBMIT_AND_NEXT_QUERIES = 9

    def test_it_takes_nine_queries_with_six_taxonomies_as_with_two(self, labeler_client, dataset, items):
        counts = []
        for reference_id, extra in (("image_1", 0), ("image_2", 4)):
            for n in range(extra):
                taxonomy_create(dataset=dataset, taxonomy_name=f"t{n}", labels=["a", "b"], required=False)
            rows = [SHIRT, {**STRIPED, "labels": []}, *({"taxonomy_name": f"t{n}", "label": "a"} for n in range(extra))]
            CategoryAnnotation.objects.all().delete()
            next_task(labeler_client, dataset)
            draft(labeler_client, dataset, reference_id, [])  # the taxonomies are read once per process
            CategoryAnnotation.objects.all().delete()
            count, response = queries_during(lambda: submit_and_next(labeler_client, dataset, reference_id, rows))
            assert response.status_code == 200
            counts.append(count)
        assert counts == [self.SUBMIT_AND_NEXT_QUERIES] * 2


class TestSubmitAnswer:
    def test_submit_answers_with_as_many_queries_for_three_multi_label_taxonomies_as_for_one(self, labeler_client, dataset, items):
        """The answer reads the chosen labels of every multi-label annotation in one query."""
        counts = []
        for reference_id, extra in (("image_1", []), ("image_2", ["colors", "materials"])):
            for name in extra:
                taxonomy_create(dataset=dataset, taxonomy_name=name, labels=["a", "b"], multi_label=True)
            rows = [SHIRT, STRIPED, *({"taxonomy_name": name, "labels": ["a"]} for name in extra)]
            next_task(labeler_client, dataset)
            count, response = queries_during(lambda: submit(labeler_client, dataset, reference_id, rows))
            assert response.status_code == 200
            assert [row["labels"] for row in response.json()][1:] == [["striped"], *(["a"] for _ in extra)]
            counts.append(count)
        assert counts[0] == counts[1]


class TestTaskDetail:
    def test_it_returns_a_finished_item_with_its_answers_without_taking_it(self, labeler_client, labeler, dataset, items):
        next_task(labeler_client, dataset)
        submit(labeler_client, dataset, "image_1", [SHIRT, STRIPED])
        next_task(labeler_client, dataset)
        response = task_detail(labeler_client, dataset, "image_1")
        assert response.status_code == 200
        body = response.json()
        assert (body["reference_id"], body["image_url"], body["lease_expires_at"]) == ("image_1", "https://images.example.com/image_1.jpg", None)
        assert body["annotations"] == [
            {"taxonomy_name": "clothing_type", "label": "shirt", "metadata": {}, "status": "finished"},
            {"taxonomy_name": "attributes", "labels": ["striped"], "metadata": {}, "status": "finished"},
        ]
        assert Task.objects.get(item=items[0]).state == Task.State.DONE
        assert Task.objects.get(holder=labeler).item == items[1]

    def test_changing_an_item_seen_again_stores_a_new_version(self, labeler_client, dataset, items):
        next_task(labeler_client, dataset)
        submit(labeler_client, dataset, "image_1", [SHIRT, STRIPED])
        next_task(labeler_client, dataset)
        task_detail(labeler_client, dataset, "image_1")
        assert submit(labeler_client, dataset, "image_1", [{**SHIRT, "label": "dress"}, STRIPED]).status_code == 200
        changed = CategoryAnnotation.objects.get(item=items[0], taxonomy__taxonomy_name="clothing_type")
        assert (changed.label.name, changed.version, changed.sync_state) == ("dress", 2, "pending")

    def test_it_does_not_take_an_open_item_or_renew_anyones_lease(self, labeler_client, second_labeler_client, dataset, items):
        next_task(second_labeler_client, dataset)
        held = Task.objects.get(item=items[0])
        assert task_detail(labeler_client, dataset, "image_1").status_code == 200
        assert task_detail(labeler_client, dataset, "image_3").status_code == 200
        assert Task.objects.get(item=items[0]).lease_expires_at == held.lease_expires_at
        assert not Task.objects.filter(item=items[2], holder__isnull=False).exists()

    def test_a_reference_id_with_a_slash_is_found(self, labeler_client, dataset):
        item_with_task(dataset, "shop/2024/image_1")
        response = task_detail(labeler_client, dataset, "shop/2024/image_1")
        assert (response.status_code, response.json()["reference_id"]) == (200, "shop/2024/image_1")

    def test_an_unknown_reference_id_is_a_404(self, labeler_client, dataset, items):
        assert task_detail(labeler_client, dataset, "image_9").status_code == 404

    def test_an_item_of_another_dataset_is_a_404(self, labeler_client, dataset, other_dataset):
        item_with_task(other_dataset, "truck_1")
        assert task_detail(labeler_client, dataset, "truck_1").status_code == 404

    # tasks/<reference_id>/ of an item with answers:
    #  1. SELECT authtoken_token JOIN auth_user LEFT JOIN datasetmember, dataset   TokenAuthentication, with the dataset
    #  2. SELECT labeling_task JOIN item LEFT JOIN scene    task_for_reference_id
    #  3. SELECT labeling_categoryannotation JOIN taxonomy  task_answers
    #  4. SELECT taxonomies_label JOIN annotationlabel      ... the chosen labels of multi-label answers
    TASK_DETAIL_QUERIES = 4

    def test_it_takes_four_queries_whatever_the_number_of_answers(self, labeler_client, dataset, items):
        next_task(labeler_client, dataset)
        submit(labeler_client, dataset, "image_1", [SHIRT, STRIPED])
        count, response = queries_during(lambda: task_detail(labeler_client, dataset, "image_1"))
        assert (response.status_code, count) == (200, self.TASK_DETAIL_QUERIES)


class TestAhead:
    def test_it_lists_the_items_next_would_hand_out_after_the_one_held_in_queue_order(self, labeler_client, dataset, items):
        more = [item_with_task(dataset, f"image_{n}") for n in range(4, 7)]
        next_task(labeler_client, dataset)
        response = ahead(labeler_client, dataset, limit=2)
        assert response.json() == [
            {"reference_id": "image_2", "image_urls": ["https://images.example.com/image_2.jpg"]},
            {"reference_id": "image_3", "image_urls": ["https://images.example.com/image_3.jpg"]},
        ]
        assert len(more) == 3 and ahead(labeler_client, dataset).json()[-1]["reference_id"] == "image_4"

    def test_it_reserves_nothing(self, labeler_client, second_labeler_client, dataset, items):
        next_task(labeler_client, dataset)
        ahead(labeler_client, dataset)
        assert Task.objects.filter(holder__isnull=False).count() == 1
        assert next_task(second_labeler_client, dataset).json()["reference_id"] == "image_2"

    def test_it_steps_over_items_other_labelers_hold_but_not_expired_leases(self, labeler_client, second_labeler_client, dataset, items):
        next_task(second_labeler_client, dataset)
        assert [task["reference_id"] for task in ahead(labeler_client, dataset).json()] == ["image_2", "image_3"]
        Task.objects.filter(item=items[0]).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
        assert [task["reference_id"] for task in ahead(labeler_client, dataset).json()] == ["image_1", "image_2", "image_3"]

    def test_items_the_labeler_skipped_come_last_oldest_skip_first(self, labeler_client, labeler, dataset, items):
        now = timezone.now()
        TaskSkip.objects.create(task=Task.objects.get(item=items[1]), user=labeler, skipped_at=now)
        TaskSkip.objects.create(task=Task.objects.get(item=items[0]), user=labeler, skipped_at=now + timedelta(seconds=1))
        assert [task["reference_id"] for task in ahead(labeler_client, dataset).json()] == ["image_3", "image_2", "image_1"]

    def test_finished_items_are_left_out(self, labeler_client, dataset, items):
        Task.objects.filter(item__in=items[:2]).update(state=Task.State.DONE)
        assert [task["reference_id"] for task in ahead(labeler_client, dataset).json()] == ["image_3"]

    def test_a_scene_lists_its_first_frames_in_order(self, labeler_client, scene_dataset):
        frames = [{"reference_id": f"d1_f{n}", "image_url": f"https://images.example.com/d1_f{n}.jpg"} for n in range(15)]
        scene_create(dataset=scene_dataset, reference_id="drive_1", frame_rate=5, frames=frames)
        (scene,) = ahead(labeler_client, scene_dataset).json()
        assert scene["image_urls"] == [frame["image_url"] for frame in frames[:12]]

    @pytest.mark.parametrize("limit", [0, 6, "all"])
    def test_it_refuses_a_limit_outside_1_to_5(self, labeler_client, dataset, items, limit):
        response = ahead(labeler_client, dataset, limit=limit)
        assert (response.status_code, [error["field"] for error in errors_of(response)]) == (400, ["limit"])

    # ahead/ of an items dataset, whatever its size:
    #  1. SELECT authtoken_token JOIN auth_user LEFT JOIN datasetmember, dataset   TokenAuthentication, with the dataset
    #  2. SELECT labeling_task JOIN item LEFT JOIN scene    the first free tasks not skipped by the labeler
    AHEAD_QUERIES = 2

    def test_it_takes_two_queries_with_200_items_as_with_5(self, labeler_client, dataset):
        counts = []
        for total in (5, 200):
            for n in range(Task.objects.count(), total):
                item_with_task(dataset, f"image_{n}")
            count, response = queries_during(lambda: ahead(labeler_client, dataset))
            assert len(response.json()) == 3
            counts.append(count)
        assert counts == [self.AHEAD_QUERIES] * 2


class TestPermissions:
    @pytest.mark.parametrize(
        "request_",
        [
            lambda client, dataset: draft(client, dataset, "image_1", [SHIRT]),
            lambda client, dataset: task_detail(client, dataset, "image_1"),
            lambda client, dataset: ahead(client, dataset),
            lambda client, dataset: submit_and_next(client, dataset, "image_1", [SHIRT, STRIPED]),
        ],
        ids=["draft", "task-detail", "ahead", "submit-and-next"],
    )
    def test_an_outsider_gets_a_404_and_an_anonymous_client_a_401(self, outsider_client, anonymous_client, dataset, items, request_):
        before = row_counts()
        assert request_(outsider_client, dataset).status_code == 404
        assert request_(anonymous_client, dataset).status_code == 401
        assert row_counts() == before


class TestHandWrittenOutputs:
    """The outputs written out by hand for speed give what their declared (documented) fields give."""

    @pytest.mark.parametrize("serializer_class", [TaskOutput, TaskWithAnswersOutput])
    def test_a_task_is_represented_as_its_declared_fields_would(self, labeler_client, dataset, items, serializer_class):
        next_task(labeler_client, dataset)
        draft(labeler_client, dataset, "image_1", [SHIRT, STRIPED])
        task = Task.objects.select_related("item", "scene").get(item__reference_id="image_1")
        serializer = serializer_class()
        assert serializer.to_representation(task) == serializers.Serializer.to_representation(serializer, task)

    def test_a_scene_task_is_represented_as_its_declared_fields_would(self, scene_dataset):
        frames = [{"reference_id": f"f{n}", "image_url": f"https://images.example.com/f{n}.jpg"} for n in range(3)]
        scene = scene_create(dataset=scene_dataset, reference_id="drive_1", frame_rate=5, frames=frames, metadata={"road": "wet"})
        scene_task = Task.objects.select_related("item", "scene").get(scene=scene)
        serializer = TaskWithAnswersOutput()
        assert serializer.to_representation(scene_task) == serializers.Serializer.to_representation(serializer, scene_task)

    def test_answers_are_represented_as_their_declared_fields_would(self, labeler_client, dataset, items):
        next_task(labeler_client, dataset)
        submit(labeler_client, dataset, "image_1", [SHIRT, STRIPED])
        for annotation in CategoryAnnotation.objects.all():
            serializer = AnnotationOutput()
            assert serializer.to_representation(annotation) == serializers.ModelSerializer.to_representation(serializer, annotation)
