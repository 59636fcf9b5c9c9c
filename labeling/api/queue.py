"""datasets/{id}/next/, submit/ and skip/: the same queue the labeling page uses."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from labeling.api.annotations import AnnotationOutput
from labeling.api.base import DatasetApi
from labeling.models import DatasetMember, Task
from labeling.services.queue import task_for_reference_id, task_next, task_skip, task_submit


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


class NextApi(DatasetApi):
    @extend_schema(request=None, responses={200: TaskOutput, 204: None})
    def post(self, request: Request, dataset_id: int) -> Response:
        """The item or scene you hold (its lease renewed), else the next one, under a lease; 204 when
        nothing is left to label."""
        task = task_next(dataset=self.dataset, user=request.user)
        if task is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(TaskOutput(task).data)


class SubmitApi(DatasetApi):
    class InputSerializer(serializers.Serializer):
        reference_id = serializers.CharField()
        annotations = serializers.ListField(child=serializers.DictField(), allow_empty=True)

    @extend_schema(request=InputSerializer, responses={200: AnnotationOutput(many=True)})
    def post(self, request: Request, dataset_id: int) -> Response:
        """Answer every required taxonomy of the item or scene: each annotation is `{"taxonomy_name",
        "label" (or "labels"), "metadata"}`. Stored as finished in one transaction; 409 if another
        labeler holds it, 403 if another labeler finished it and you are not an admin."""
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        task = task_for_reference_id(dataset=self.dataset, reference_id=data.validated_data["reference_id"])
        saved = task_submit(
            dataset=self.dataset,
            user=request.user,
            task=task,
            rows=data.validated_data["annotations"],
            may_change_others_work=self.dataset.role == DatasetMember.Role.ADMIN,
        )
        return Response(AnnotationOutput([result.annotation for result in saved], many=True).data)


class SkipApi(DatasetApi):
    class InputSerializer(serializers.Serializer):
        reference_id = serializers.CharField()

    @extend_schema(request=InputSerializer, responses={204: None})
    def post(self, request: Request, dataset_id: int) -> Response:
        """Give the item or scene back: it goes to the end of your queue (others may take it)."""
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        task = task_for_reference_id(dataset=self.dataset, reference_id=data.validated_data["reference_id"])
        task_skip(user=request.user, task=task)
        return Response(status=status.HTTP_204_NO_CONTENT)
