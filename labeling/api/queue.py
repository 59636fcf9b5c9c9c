"""datasets/{id}/next/, submit/, submit-and-next/, skip/, draft/, ahead/ and tasks/{reference_id}/:
the queue, for scripts and for the labeling page alike."""

from django.core.exceptions import ValidationError
from django.db.models import prefetch_related_objects
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response

from labeling.api.annotations import DATETIME, AnnotationOutput
from labeling.api.base import DatasetApi
from labeling.models import Task
from labeling.selectors import dataset_image_check_counts, task_answers, task_list_ahead_for_user
from labeling.services.annotations import AnnotationSaved
from labeling.services.queue import TaskHeld, task_draft_save, task_for_reference_id, task_next, task_skip, task_submit


class TaskOutput(serializers.Serializer):
    reference_id = serializers.CharField(source="target.reference_id")
    kind = serializers.SerializerMethodField()
    image_url = serializers.SerializerMethodField()
    video_url = serializers.SerializerMethodField()
    frames = serializers.SerializerMethodField()
    frame_rate = serializers.SerializerMethodField()
    metadata = serializers.JSONField(source="target.metadata")
    lease_expires_at = serializers.DateTimeField()

    def get_kind(self, task: Task) -> str:
        return "scene" if task.scene_id else "item"

    def get_image_url(self, task: Task) -> str | None:
        return task.item.image_src if task.item_id else None

    def get_video_url(self, task: Task) -> str | None:
        return task.scene.video_url or None if task.scene_id else None

    def get_frame_rate(self, task: Task) -> float | None:
        return task.scene.frame_rate if task.scene_id else None

    def get_frames(self, task: Task) -> list[dict] | None:
        if not task.scene_id:
            return None
        return [{"reference_id": frame.reference_id, "image_url": frame.image_src} for frame in task.scene.frames.order_by("frame_index")]


    def to_representation(self, task: Task) -> dict:
        # Written out rather than through the declared fields (which document the shape): DRF
        # copying and binding the fields for each answer is a large share of a next/ request's CPU.
        # tests/labeling/api/test_queue_page_endpoints.py keeps both in step.
        return {
            "reference_id": task.target.reference_id,
            "kind": self.get_kind(task),
            "image_url": self.get_image_url(task),
            "video_url": self.get_video_url(task),
            "frames": self.get_frames(task),
            "frame_rate": self.get_frame_rate(task),
            "metadata": task.target.metadata,
            "lease_expires_at": DATETIME.to_representation(task.lease_expires_at) if task.lease_expires_at else None,
        }


class TaskWithAnswersOutput(TaskOutput):
    annotations = serializers.SerializerMethodField(
        help_text="The current answers (drafts and finished), in the shape submit/ takes them, with their `status`. "
        "A multi-label answer sent back for the classes added since has `new_classes`: ask only those (and send "
        "them as `shown`); its other classes keep their answers."
    )

    def get_annotations(self, task: Task) -> list[dict]:
        # context["answered"] False: the queue saw no annotation of the task's target just now.
        return task_answers(task=task) if self.context.get("answered", True) else []

    def to_representation(self, task: Task) -> dict:
        return {**super().to_representation(task), "annotations": self.get_annotations(task)}


def saved_output(saved: list[AnnotationSaved]) -> list[dict]:
    """The stored annotations as AnnotationOutput, with the chosen labels of multi-label ones read in
    one query (not one per annotation), so the answer costs the same whatever the number of taxonomies."""
    annotations = [result.annotation for result in saved]
    prefetch_related_objects([annotation for annotation in annotations if annotation.taxonomy.multi_label], "labels")
    return AnnotationOutput(annotations, many=True).data


def held_output(held: TaskHeld) -> dict:
    return TaskWithAnswersOutput(held.task, context={"answered": held.answered}).data


# When the queue has nothing left for the labeler, why some work may still come (or never will).
QUEUE_CHECKING_HEADER = "Queue-Checking"
QUEUE_FAILED_HEADER = "Queue-Failed"


def queue_empty_headers(dataset) -> dict[str, str]:
    """The headers of an answer that has no task to hand out: how many items (or scenes) wait for
    their images' check and come into the queue when they pass, and how many failed it. One query,
    only then: an answer that hands out a task costs what it did."""
    counts = dataset_image_check_counts(dataset=dataset)
    return {QUEUE_CHECKING_HEADER: str(counts["checking"]), QUEUE_FAILED_HEADER: str(counts["failed_images"])}


def queue_empty_header_docs(status_code: int) -> list[OpenApiParameter]:
    """The schema of `queue_empty_headers`, on the answer (`status_code`) that carries them."""
    said = {
        QUEUE_CHECKING_HEADER: "items (or scenes) whose images are still being checked; they come into the queue when they pass.",
        QUEUE_FAILED_HEADER: "items (or scenes) whose image failed its check (the dataset's admins see why).",
    }
    return [
        OpenApiParameter(
            name, int, OpenApiParameter.HEADER, response=[status_code], description=f"Only when nothing is left for you: {text}"
        )
        for name, text in said.items()
    ]


class NextApi(DatasetApi):
    @extend_schema(request=None, responses={200: TaskWithAnswersOutput, 204: None}, parameters=queue_empty_header_docs(204))
    def post(self, request: Request, dataset_id: int) -> Response:
        """The item or scene you hold (its lease renewed), else the next one, under a lease, with its
        current `annotations` (a draft you left is restored from them); 204 when nothing is left, with
        the `Queue-Checking` and `Queue-Failed` headers (work still to come, work that never will)."""
        held = task_next(dataset=self.dataset, user=request.user)
        if held is None:
            return Response(status=status.HTTP_204_NO_CONTENT, headers=queue_empty_headers(self.dataset))
        return Response(held_output(held))


class SubmitApi(DatasetApi):
    class InputSerializer(serializers.Serializer):
        # Matched exactly as sent (here, in skip/ and draft/): trimmed, "r\x85" would name the item "r".
        reference_id = serializers.CharField(trim_whitespace=False)
        annotations = serializers.ListField(child=serializers.DictField(), allow_empty=True)

    @extend_schema(request=InputSerializer, responses={200: AnnotationOutput(many=True)})
    def post(self, request: Request, dataset_id: int) -> Response:
        """Answer every required taxonomy of the item or scene: each annotation is `{"taxonomy_name",
        "label" (or "labels"), "metadata"}`. Stored as finished in one transaction. A labeler may
        submit the item they hold (from next/) or change their own finished work: 409 if another
        labeler holds it or it was never handed to you, 403 if another labeler finished it. Admins
        may submit anything."""
        return Response(saved_output(submit_from_request(self, request)))


def submit_from_request(api: DatasetApi, request: Request) -> list[AnnotationSaved]:
    """What submit/ and submit-and-next/ share: parse the body and store the answers as finished."""
    data = SubmitApi.InputSerializer(data=request.data)
    data.is_valid(raise_exception=True)
    return task_submit(
        dataset=api.dataset,
        user=request.user,
        reference_id=data.validated_data["reference_id"],
        rows=data.validated_data["annotations"],
        role=api.dataset.role,
    )


class SubmitAndNextApi(DatasetApi):
    class OutputSerializer(serializers.Serializer):
        annotations = AnnotationOutput(many=True)
        next = TaskWithAnswersOutput(allow_null=True, help_text="What next/ hands out now; null when nothing is left.")

    @extend_schema(request=SubmitApi.InputSerializer, responses={200: OutputSerializer}, parameters=queue_empty_header_docs(200))
    def post(self, request: Request, dataset_id: int) -> Response:
        """submit/, then next/, in one round trip: the labeling page shows the next item as soon as
        this answers. The submit is committed before the next task is claimed (a failure of the
        second step leaves the first one stored; asking next/ again is then safe). When `next` is
        null, the headers say what next/'s 204 says."""
        saved = submit_from_request(self, request)
        following = task_next(dataset=self.dataset, user=request.user)
        if following is None:
            return Response({"annotations": saved_output(saved), "next": None}, headers=queue_empty_headers(self.dataset))
        return Response({"annotations": saved_output(saved), "next": held_output(following)})


class SkipApi(DatasetApi):
    class InputSerializer(serializers.Serializer):
        reference_id = serializers.CharField(trim_whitespace=False)

    @extend_schema(request=InputSerializer, responses={204: None})
    def post(self, request: Request, dataset_id: int) -> Response:
        """Give the item or scene back: it goes to the end of your queue (others may take it)."""
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        task = task_for_reference_id(dataset=self.dataset, reference_id=data.validated_data["reference_id"])
        task_skip(user=request.user, task=task)
        return Response(status=status.HTTP_204_NO_CONTENT)


class DraftApi(DatasetApi):
    class InputSerializer(serializers.Serializer):
        reference_id = serializers.CharField(trim_whitespace=False)
        annotations = serializers.ListField(child=serializers.DictField(), allow_empty=True)

    @extend_schema(request=InputSerializer, responses={200: AnnotationOutput(many=True)})
    def post(self, request: Request, dataset_id: int) -> Response:
        """Keep unfinished answers of the item or scene you hold, so leaving mid-item loses nothing:
        the same rows as submit/, where a single-label taxonomy may have `"label": null` and a
        multi-label one `"labels": null` (unanswered: its draft is forgotten; `[]` is "None of these"). Answers
        already finished are left as they are (submit changes them). The same rule as submit/ decides
        who may (409 if another labeler holds it or you were not handed it, 403 if another finished it)."""
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        task = task_for_reference_id(dataset=self.dataset, reference_id=data.validated_data["reference_id"])
        saved = task_draft_save(
            dataset=self.dataset, user=request.user, role=self.dataset.role, task=task, rows=data.validated_data["annotations"]
        )
        return Response(saved_output(saved))


class TaskDetailApi(DatasetApi):
    @extend_schema(responses={200: TaskWithAnswersOutput})
    def get(self, request: Request, dataset_id: int, reference_id: str) -> Response:
        """One item or scene of the queue with its current answers, to look at or change again (the
        labeling page's "go back"). Does not take it: submit/ stores a change as a new version."""
        try:
            task = task_for_reference_id(dataset=self.dataset, reference_id=reference_id)
        except ValidationError:
            raise NotFound("No item or scene of this dataset has this reference_id.") from None
        return Response(TaskWithAnswersOutput(task).data)


AHEAD_MAX = 5


class AheadOutput(serializers.Serializer):
    reference_id = serializers.CharField(source="target.reference_id")
    image_urls = serializers.SerializerMethodField(help_text="The image, or a scene's first frames, to preload.")

    def get_image_urls(self, task: Task) -> list[str]:
        if task.item_id:
            return [task.item.image_src]
        return [frame.image_src for frame in task.scene.frames.all()]


class AheadApi(DatasetApi):
    class Params(serializers.Serializer):
        limit = serializers.IntegerField(min_value=1, max_value=AHEAD_MAX, default=3)

    @extend_schema(parameters=[OpenApiParameter("limit", int, description=f"1 to {AHEAD_MAX}, default 3")], responses=AheadOutput(many=True))
    def get(self, request: Request, dataset_id: int) -> Response:
        """The items or scenes next/ would probably hand out after the one you hold, so the labeling
        page can load their images while you work. Nothing is reserved: another labeler may take them
        first, and then next/ hands out another one."""
        params = self.Params(data=request.query_params)
        params.is_valid(raise_exception=True)
        tasks = task_list_ahead_for_user(dataset=self.dataset, user=request.user, limit=params.validated_data["limit"])
        return Response(AheadOutput(tasks, many=True).data)
