"""datasets/{id}/annotations/ (list, create or update in bulk) and datasets/{id}/export/ (JSONL)."""

import json

from django.http import StreamingHttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from labeling.api.base import DatasetApi, keyset_page
from labeling.api.idempotency import idempotent
from labeling.api.items import FilterParams
from labeling.errors import BatchInvalid, RowError
from labeling.models import CategoryAnnotation
from labeling.nucleus import annotation_payloads
from labeling.selectors import annotation_list, finished_annotations_for_export
from labeling.services.annotations_import import annotations_import


class AnnotationOutput(serializers.ModelSerializer):
    reference_id = serializers.CharField()
    taxonomy_name = serializers.CharField(source="taxonomy.taxonomy_name")
    label = serializers.SerializerMethodField()
    labels = serializers.SerializerMethodField()
    annotator = serializers.CharField(source="annotator.username", allow_null=True)

    class Meta:
        model = CategoryAnnotation
        fields = [
            "id", "reference_id", "taxonomy_name", "label", "labels", "metadata", "status", "annotator",
            "version", "sync_state", "created_at", "updated_at",
        ]

    def get_label(self, annotation) -> str | None:
        return None if annotation.taxonomy.multi_label else (annotation.label.name if annotation.label else None)

    def get_labels(self, annotation) -> list[str] | None:
        return annotation.chosen_label_names() if annotation.taxonomy.multi_label else None

    def to_representation(self, annotation) -> dict:
        # Written out rather than through the declared fields (which document the shape): DRF
        # building a ModelSerializer's fields for every answer cost more than the rest of a submit.
        # tests/labeling/api/test_annotations.py keeps both in step.
        return {
            "id": annotation.id,
            "reference_id": annotation.reference_id,
            "taxonomy_name": annotation.taxonomy.taxonomy_name,
            "label": self.get_label(annotation),
            "labels": self.get_labels(annotation),
            "metadata": annotation.metadata,
            "status": annotation.status,
            "annotator": annotation.annotator.username if annotation.annotator_id else None,
            "version": annotation.version,
            "sync_state": annotation.sync_state,
            "created_at": DATETIME.to_representation(annotation.created_at),
            "updated_at": DATETIME.to_representation(annotation.updated_at),
        }


DATETIME = serializers.DateTimeField()


class AnnotationFilterParams(FilterParams):
    status = serializers.ChoiceField(choices=CategoryAnnotation.Status.choices, required=False)


class AnnotationListApi(DatasetApi):
    @extend_schema(
        parameters=[AnnotationFilterParams, OpenApiParameter("after", int), OpenApiParameter("limit", int)],
        responses=AnnotationOutput(many=True),
    )
    def get(self, request: Request, dataset_id: int) -> Response:
        filters = AnnotationFilterParams(data=request.query_params)
        filters.is_valid(raise_exception=True)
        annotations = annotation_list(dataset=self.dataset, filters=filters.validated_data)
        return keyset_page(request, annotations, lambda annotation: AnnotationOutput(annotation).data)

    @extend_schema(
        request={"application/json": {"oneOf": [{"type": "object"}, {"type": "array", "items": {"type": "object"}}]}},
        responses={200: AnnotationOutput(many=True)},
    )
    @idempotent
    def post(self, request: Request, dataset_id: int) -> Response:
        """Create or update finished annotations: one `{"reference_id", "taxonomy_name", "label"
        (or "labels" for a multi-label taxonomy), "metadata"}` or a list of them, all or none. The
        way scripts bring existing labels in, with an admin's token; a labeler's token may write only
        what submit/ lets them (the item they hold, their own finished work): 409 or 403 naming
        each refused row otherwise."""
        if not isinstance(request.data, (dict, list)):
            raise BatchInvalid([RowError(index=None, field="", message="Send an annotation object or a list of them.")])
        rows = request.data if isinstance(request.data, list) else [request.data]
        if not rows:
            raise BatchInvalid([RowError(index=None, field="", message="Send at least one annotation.")])
        not_objects = [index for index, row in enumerate(rows) if not isinstance(row, dict)]
        if not_objects:
            # annotations_import reads every row as a dict before it checks them one by one.
            raise BatchInvalid([RowError(index=index, field="", message="Each annotation is a JSON object.") for index in not_objects])
        saved = annotations_import(dataset=self.dataset, rows=rows, annotator=request.user, role=self.dataset.role)
        ids = [result.annotation.id for result in saved]
        annotations = annotation_list(dataset=self.dataset, filters={}).filter(id__in=ids)
        return Response(AnnotationOutput(annotations, many=True).data, status=status.HTTP_200_OK)


class ExportApi(DatasetApi):
    @extend_schema(responses={(200, "application/x-ndjson"): {"type": "string"}})
    def get(self, request: Request, dataset_id: int) -> StreamingHttpResponse:
        """Every finished annotation as JSON Lines, one line per annotation exactly as the Nucleus
        SDK's `CategoryAnnotation(...).to_payload()` / `SceneCategoryAnnotation(...).to_payload()`
        builds it; a multi-label annotation is one True/False line per class its labeler was shown
        (classes added to the taxonomy since are not in it). The same payloads the sync sends."""
        annotations = finished_annotations_for_export(dataset=self.dataset).iterator(chunk_size=2000)
        lines = (json.dumps(payload) + "\n" for annotation in annotations for payload in annotation_payloads(annotation))
        response = StreamingHttpResponse(lines, content_type="application/x-ndjson")
        response["Content-Disposition"] = f'attachment; filename="dataset-{self.dataset.id}-annotations.jsonl"'
        return response
