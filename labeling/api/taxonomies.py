"""datasets/{id}/taxonomies/ and their labels, with Nucleus's add_taxonomy semantics, and
taxonomies/{name}/ask-new-classes/ (finished answers back to the queue for the classes added since)."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from labeling.api.base import DatasetApi, NameField
from labeling.api.idempotency import idempotent
from labeling.services.taxonomy_removals import label_remove, taxonomy_remove
from labeling.services.new_classes import taxonomy_ask_new_classes
from taxonomies.models import Label, Taxonomy
from taxonomies.services import TaxonomyAddStatus, label_update, taxonomy_add, taxonomy_add_labels, taxonomy_update


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string"},
            {
                "type": "object",
                "properties": {"name": {"type": "string"}, "hotkey": {"type": "string", "maxLength": 1}},
                "required": ["name"],
            },
        ]
    }
)
class LabelField(serializers.Field):
    """A label: its name, or `{"name", "hotkey"}`."""

    def to_internal_value(self, data):
        if isinstance(data, str):
            return data
        if isinstance(data, dict) and isinstance(data.get("name"), str) and set(data) <= {"name", "hotkey"}:
            return data
        raise serializers.ValidationError('A label is a string or {"name": ..., "hotkey": ...}.')

    def to_representation(self, value):
        return value


class TaxonomyOutput(serializers.ModelSerializer):
    labels = serializers.SerializerMethodField()
    label_hotkeys = serializers.SerializerMethodField()
    needs_nucleus_rebuild = serializers.BooleanField()

    class Meta:
        model = Taxonomy
        fields = [
            "taxonomy_name", "type", "labels", "label_hotkeys", "multi_label", "applies_to", "required",
            "position", "needs_nucleus_rebuild",
        ]

    def get_labels(self, taxonomy) -> list[str]:
        return taxonomy.label_names()

    def get_label_hotkeys(self, taxonomy) -> dict[str, str]:
        return {label.name: label.hotkey for label in taxonomy.labels.all() if label.hotkey}


class TaxonomyListApi(DatasetApi):
    admin_methods = frozenset({"POST"})

    class InputSerializer(serializers.Serializer):
        taxonomy_name = NameField(max_length=200)
        type = serializers.ChoiceField(choices=Taxonomy.Type.choices, default=Taxonomy.Type.CATEGORY)
        labels = serializers.ListField(child=LabelField(), allow_empty=False)
        multi_label = serializers.BooleanField(default=False)
        applies_to = serializers.ChoiceField(choices=Taxonomy.AppliesTo.choices, default=Taxonomy.AppliesTo.ITEMS)
        required = serializers.BooleanField(default=True)
        update = serializers.BooleanField(default=False, help_text="If it exists, append the labels it lacks.")

    @extend_schema(responses=TaxonomyOutput(many=True))
    def get(self, request: Request, dataset_id: int) -> Response:
        taxonomies = self.dataset.taxonomies.prefetch_related("labels")
        return Response(TaxonomyOutput(taxonomies, many=True).data)

    @extend_schema(request=InputSerializer, responses={201: TaxonomyOutput, 200: TaxonomyOutput})
    @idempotent
    def post(self, request: Request, dataset_id: int) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = {key: value for key, value in data.validated_data.items() if key != "type"}
        taxonomy, nucleus_status = taxonomy_add(dataset=self.dataset, **fields)
        created = nucleus_status == TaxonomyAddStatus.CREATED
        body = {**TaxonomyOutput(taxonomy).data, "status": nucleus_status}
        return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class TaxonomyDetailApi(DatasetApi):
    admin_methods = frozenset({"PATCH", "DELETE"})

    class InputSerializer(serializers.Serializer):
        taxonomy_name = NameField(max_length=200, required=False)
        applies_to = serializers.ChoiceField(choices=Taxonomy.AppliesTo.choices, required=False)
        required = serializers.BooleanField(required=False)
        position = serializers.IntegerField(min_value=0, required=False)

    def taxonomy(self, taxonomy_name: str) -> Taxonomy:
        return get_object_or_404(self.dataset.taxonomies.prefetch_related("labels"), taxonomy_name=taxonomy_name)

    @extend_schema(responses=TaxonomyOutput)
    def get(self, request: Request, dataset_id: int, taxonomy_name: str) -> Response:
        return Response(TaxonomyOutput(self.taxonomy(taxonomy_name)).data)

    @extend_schema(request=InputSerializer, responses=TaxonomyOutput)
    def patch(self, request: Request, dataset_id: int, taxonomy_name: str) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        taxonomy = self.taxonomy(taxonomy_name)
        changes = {
            "taxonomy_name": taxonomy.taxonomy_name, "applies_to": taxonomy.applies_to,
            "required": taxonomy.required, "position": taxonomy.position, **data.validated_data,
        }
        return Response(TaxonomyOutput(taxonomy_update(taxonomy=taxonomy, **changes)).data)

    @extend_schema(
        parameters=[OpenApiParameter("confirm", bool, description="Required when finished annotations would be deleted.")],
        responses={204: None},
    )
    def delete(self, request: Request, dataset_id: int, taxonomy_name: str) -> Response:
        confirm = request.query_params.get("confirm", "").lower() in {"1", "true", "yes"}
        taxonomy_remove(taxonomy=self.taxonomy(taxonomy_name), confirm=confirm)
        return Response(status=status.HTTP_204_NO_CONTENT)


class AskNewClassesApi(DatasetApi):
    admin_methods = frozenset({"POST"})

    class InputSerializer(serializers.Serializer):
        reference_ids = serializers.ListField(
            child=serializers.CharField(), required=False, allow_empty=False,
            help_text="Only these items or scenes; without it, every finished answer of the taxonomy.",
        )

    class OutputSerializer(serializers.Serializer):
        annotations = serializers.IntegerField(help_text="Answers sent back.")
        tasks_reopened = serializers.IntegerField(help_text="Their tasks that were done and are open in the queue again.")
        classes = serializers.ListField(child=serializers.CharField(), help_text="The classes asked, in the taxonomy's order.")

    @extend_schema(request=InputSerializer, responses=OutputSerializer)
    def post(self, request: Request, dataset_id: int, taxonomy_name: str) -> Response:
        """Send the finished answers of a multi-label taxonomy back to the queue for just the classes
        added since their labeler answered: the labeling page then shows only those classes for those
        items, and their answers add the new True/False payloads. Nothing is sent to Nucleus again
        until then. 400 for a single-label taxonomy (appended labels change nothing for its answers)."""
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        taxonomy = get_object_or_404(self.dataset.taxonomies.select_related("dataset"), taxonomy_name=taxonomy_name)
        asked = taxonomy_ask_new_classes(taxonomy=taxonomy, reference_ids=data.validated_data.get("reference_ids"))
        return Response(self.OutputSerializer(asked).data)


class LabelListApi(DatasetApi):
    admin_methods = frozenset({"POST"})

    class InputSerializer(serializers.Serializer):
        labels = serializers.ListField(child=LabelField(), allow_empty=False)

    @extend_schema(request=InputSerializer, responses=TaxonomyOutput)
    @idempotent
    def post(self, request: Request, dataset_id: int, taxonomy_name: str) -> Response:
        """Append labels, keeping their order; labels the taxonomy already has are left as they are."""
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        taxonomy = get_object_or_404(self.dataset.taxonomies, taxonomy_name=taxonomy_name)
        taxonomy_add_labels(taxonomy=taxonomy, labels=data.validated_data["labels"])
        return Response(TaxonomyOutput(taxonomy).data)


class LabelDetailApi(DatasetApi):
    admin_methods = frozenset({"PATCH", "DELETE"})

    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=200, required=False, trim_whitespace=False)
        hotkey = serializers.CharField(max_length=1, required=False, allow_blank=True, trim_whitespace=False)
        position = serializers.IntegerField(min_value=0, required=False)

    def label(self, taxonomy_name: str, label: str) -> Label:
        return get_object_or_404(
            Label.objects.select_related("taxonomy"), taxonomy__dataset=self.dataset, taxonomy__taxonomy_name=taxonomy_name, name=label
        )

    @extend_schema(request=InputSerializer, responses=TaxonomyOutput)
    def patch(self, request: Request, dataset_id: int, taxonomy_name: str, label: str) -> Response:
        """Rename a label or change its hotkey or position. Nucleus keeps labels append-only, so a
        rename means the taxonomy is rebuilt there on the next sync."""
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        found = self.label(taxonomy_name, label)
        changes = {"name": found.name, "hotkey": found.hotkey, "position": found.position, **data.validated_data}
        label_update(label=found, **changes)
        return Response(TaxonomyOutput(found.taxonomy).data)

    @extend_schema(
        parameters=[
            OpenApiParameter("relabel_to", str, description="Move the annotations that use the label to this label."),
            OpenApiParameter("drop_from_annotations", bool, description="Multi-label only: take it out of them instead."),
        ],
        responses=TaxonomyOutput,
    )
    def delete(self, request: Request, dataset_id: int, taxonomy_name: str, label: str) -> Response:
        found = self.label(taxonomy_name, label)
        target_name = request.query_params.get("relabel_to")
        relabel_to = None
        if target_name:
            relabel_to = found.taxonomy.labels.filter(name=target_name).first()
            if relabel_to is None:
                raise serializers.ValidationError({"relabel_to": f"“{taxonomy_name}” has no label “{target_name}”."})
        drop = request.query_params.get("drop_from_annotations", "").lower() in {"1", "true", "yes"}
        label_remove(label=found, relabel_to=relabel_to, drop_from_annotations=drop)
        return Response(TaxonomyOutput(found.taxonomy).data)
