"""datasets/{id}/items/ and datasets/{id}/scenes/: list with filters, bulk create all-or-nothing."""

from pathlib import PurePath

from django.db.models import Count

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from labeling.api.base import DatasetApi, keyset_page
from labeling.api.idempotency import idempotent
from labeling.api.parsers import FormParser, JSONParser, MultiPartParser
from labeling.errors import BatchInvalid, RowError
from labeling.importing import FORMATS, format_from_name, rows_from_bytes
from labeling.models import Item, Scene, Task
from labeling.selectors import item_list
from labeling.services.images import item_image_sizes_request
from labeling.services.items import items_import, scenes_import

LIST_FILTERS = ["status", "taxonomy", "label", "annotator", "reference_id"]


class ItemOutput(serializers.ModelSerializer):
    image_url = serializers.SerializerMethodField()
    status = serializers.CharField(
        source="task.state",
        help_text="open or done in the labeling queue; waiting while its uploaded image is being checked, or if it failed.",
    )
    image_check = serializers.CharField(
        help_text="ok; pending while an uploaded image is being decoded and checked (its task waits); failed if it "
        "could not be used (image_error says why; it is never handed out)."
    )
    image_error = serializers.CharField(help_text="Why the uploaded image failed its check; empty otherwise.")

    class Meta:
        model = Item
        fields = ["id", "reference_id", "image_url", "width", "height", "metadata", "status", "image_check", "image_error", "created_at"]

    def get_image_url(self, item: Item) -> str:
        return item.image_src


class FilterParams(serializers.Serializer):
    status = serializers.ChoiceField(choices=Task.State.choices, required=False)
    taxonomy = serializers.CharField(required=False)
    label = serializers.CharField(required=False)
    annotator = serializers.CharField(required=False)
    reference_id = serializers.CharField(required=False)


class ItemListApi(DatasetApi):
    admin_methods = frozenset({"POST"})
    parser_classes = [JSONParser, MultiPartParser, FormParser]
    upload_fields = frozenset({"file", "images"})  # the multipart fields read as files

    @extend_schema(
        parameters=[FilterParams, OpenApiParameter("after", int), OpenApiParameter("limit", int)],
        responses=ItemOutput(many=True),
    )
    def get(self, request: Request, dataset_id: int) -> Response:
        filters = FilterParams(data=request.query_params)
        filters.is_valid(raise_exception=True)
        items = item_list(dataset=self.dataset, filters=filters.validated_data)
        return keyset_page(request, items, lambda item: ItemOutput(item).data)

    @extend_schema(
        request={
            "application/json": {"type": "array", "items": {"type": "object"}},
            "multipart/form-data": {
                "type": "object",
                "properties": {
                    "file": {"type": "string", "format": "binary", "description": "JSON, JSONL or CSV rows."},
                    "format": {"type": "string", "enum": list(FORMATS)},
                    "images": {"type": "array", "items": {"type": "string", "format": "binary"}},
                    "reference_ids": {"type": "array", "items": {"type": "string"}},
                },
            },
        },
        responses={201: {"type": "object", "properties": {"created": {"type": "integer"}}}},
    )
    @idempotent
    def post(self, request: Request, dataset_id: int) -> Response:
        """Add items from a JSON list of `{"reference_id", "image_url", "metadata"}`, from a JSON,
        JSONL or CSV `file`, or from uploaded `images` (reference_id: the file name without its
        extension, or the matching entry of `reference_ids`). All rows are stored, or none."""
        items = items_import(dataset=self.dataset, rows=rows_from_request(request))
        item_image_sizes_request(items=items)
        return Response({"created": len(items)}, status=status.HTTP_201_CREATED)


def rows_from_request(request: Request) -> list:
    if request.content_type.startswith("application/json"):
        if not isinstance(request.data, list):
            raise BatchInvalid([RowError(index=None, field="", message="Send a JSON list of rows.")])
        return refuse_upload_field(request.data)
    sent_as_text = [name for name in sorted(ItemListApi.upload_fields) if name in request.data and name not in request.FILES]
    if sent_as_text:
        raise BatchInvalid([RowError(index=None, field=name, message="Expected a file here, not text.") for name in sent_as_text])
    if "file" in request.FILES:
        if "images" in request.FILES:
            raise BatchInvalid([RowError(index=None, field="images", message="Send either a file of rows or images, not both.")])
        upload = request.FILES["file"]
        file_format = request.data.get("format") or format_from_name(upload.name)
        if file_format not in FORMATS:
            raise BatchInvalid([RowError(index=None, field="format", message=f"Name the file *.json, *.jsonl or *.csv, or send format: one of {', '.join(FORMATS)}.")])
        return refuse_upload_field(rows_from_bytes(upload.read(), file_format=file_format))
    images = request.FILES.getlist("images")
    if not images:
        raise BatchInvalid([RowError(index=None, field="", message="Send a JSON list, a file, or images.")])
    reference_ids = request.data.getlist("reference_ids") if hasattr(request.data, "getlist") else []
    if reference_ids and len(reference_ids) != len(images):
        raise BatchInvalid([RowError(index=None, field="reference_ids", message=f"{len(reference_ids)} reference_ids for {len(images)} images.")])
    names = reference_ids or [PurePath(image.name).stem for image in images]
    return [{"reference_id": name, "image_file": image} for name, image in zip(names, images)]


def refuse_upload_field(rows: list) -> list:
    """Refuse `image_file` in rows (and frames) that a client wrote as JSON or in a file.

    It is the key by which multipart `images` reach the import service, which takes its value for
    an uploaded file: named in a JSON row it would be a string, and the import would fail with a
    500 instead of a 400."""
    message = "Unknown field; upload images as multipart `images` instead."
    errors = []
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            continue
        if "image_file" in row:
            errors.append(RowError(index=index, field="image_file", message=message))
        frames = row.get("frames")
        if isinstance(frames, list):
            errors.extend(
                RowError(index=index, field=f"frames[{position}].image_file", message=message)
                for position, frame in enumerate(frames)
                if isinstance(frame, dict) and "image_file" in frame
            )
    if errors:
        raise BatchInvalid(errors)
    return rows


class SceneOutput(serializers.ModelSerializer):
    frame_count = serializers.IntegerField()
    status = serializers.CharField(source="task.state")

    class Meta:
        model = Scene
        fields = ["id", "reference_id", "frame_rate", "video_url", "metadata", "frame_count", "status", "created_at"]


class SceneListApi(DatasetApi):
    admin_methods = frozenset({"POST"})

    @extend_schema(parameters=[OpenApiParameter("after", int), OpenApiParameter("limit", int)], responses=SceneOutput(many=True))
    def get(self, request: Request, dataset_id: int) -> Response:
        scenes = (
            Scene.objects.filter(dataset=self.dataset)
            .select_related("task")
            .annotate(frame_count=Count("frames"))
            .order_by("id")
        )
        return keyset_page(request, scenes, lambda scene: SceneOutput(scene).data)

    @extend_schema(
        request={"application/json": {"type": "array", "items": {"type": "object"}}},
        responses={201: {"type": "object", "properties": {"created": {"type": "integer"}}}},
    )
    @idempotent
    def post(self, request: Request, dataset_id: int) -> Response:
        """Add scenes from a JSON list of `{"reference_id", "frame_rate", "frames": [{"reference_id",
        "image_url"}], "video_url", "metadata"}`, all or none."""
        if not isinstance(request.data, list):
            raise BatchInvalid([RowError(index=None, field="", message="Send a JSON list of scenes.")])
        scenes = scenes_import(dataset=self.dataset, rows=refuse_upload_field(request.data))
        return Response({"created": len(scenes)}, status=status.HTTP_201_CREATED)
