"""datasets/, datasets/{id}/ and datasets/{id}/members/."""

from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling.api.base import DatasetApi, NameField
from labeling.api.idempotency import idempotent
from labeling.models import Dataset, DatasetMember
from labeling.selectors import dataset_create_allowed, dataset_list_for_user, user_by_username
from labeling.services.datasets import dataset_create, dataset_member_remove, dataset_member_set, dataset_update


PUSH_ITEMS_HELP = (
    "Each sync first appends to Nucleus the items or scenes it does not have yet; their annotations wait, "
    "pending, until they are there."
)


class DatasetOutput(serializers.ModelSerializer):
    role = serializers.CharField(help_text="Your role in the dataset: admin or labeler.")

    class Meta:
        model = Dataset
        fields = ["id", "name", "kind", "nucleus_dataset_id", "nucleus_push_items", "role", "created_at"]


class DatasetSavedOutput(DatasetOutput):
    warnings = serializers.SerializerMethodField(
        help_text="Said when nucleus_dataset_id was stored without being checked on Nucleus (no API key, "
        "Nucleus unreachable); an id Nucleus does not know is a 400 instead."
    )

    class Meta(DatasetOutput.Meta):
        fields = [*DatasetOutput.Meta.fields, "warnings"]

    def get_warnings(self, dataset: Dataset) -> list[str]:
        warning = getattr(dataset, "nucleus_link_warning", "")
        return [warning] if warning else []


class DatasetListApi(APIView):
    class InputSerializer(serializers.Serializer):
        name = NameField(max_length=200)
        kind = serializers.ChoiceField(choices=Dataset.Kind.choices, default=Dataset.Kind.IMAGES)
        nucleus_dataset_id = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
        nucleus_push_items = serializers.BooleanField(required=False, default=False, help_text=PUSH_ITEMS_HELP)

    @extend_schema(responses=DatasetOutput(many=True))
    def get(self, request: Request) -> Response:
        return Response(DatasetOutput(dataset_list_for_user(user=request.user), many=True).data)

    @extend_schema(request=InputSerializer, responses={201: DatasetSavedOutput, 403: None})
    @idempotent
    def post(self, request: Request) -> Response:
        """Create a dataset and become its admin: for superusers and users given `labeling.add_dataset`."""
        # Before the body is read: a refused user learns nothing of other datasets (a name taken, a Nucleus link).
        if not dataset_create_allowed(user=request.user):
            raise PermissionDenied("You may not create datasets; ask an administrator for the labeling.add_dataset permission.")
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        dataset = dataset_create(**data.validated_data, created_by=request.user)
        dataset.role = DatasetMember.Role.ADMIN
        return Response(DatasetSavedOutput(dataset).data, status=status.HTTP_201_CREATED)


class DatasetDetailApi(DatasetApi):
    admin_methods = frozenset({"PATCH"})

    class InputSerializer(serializers.Serializer):
        name = NameField(max_length=200, required=False)
        nucleus_dataset_id = serializers.CharField(max_length=100, required=False, allow_blank=True)
        nucleus_push_items = serializers.BooleanField(required=False, help_text=PUSH_ITEMS_HELP)

    @extend_schema(responses=DatasetOutput)
    def get(self, request: Request, dataset_id: int) -> Response:
        return Response(DatasetOutput(self.dataset).data)

    @extend_schema(request=InputSerializer, responses=DatasetSavedOutput)
    def patch(self, request: Request, dataset_id: int) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        current = {name: getattr(self.dataset, name) for name in ("name", "nucleus_dataset_id", "nucleus_push_items")}
        changes = {**current, **data.validated_data}
        return Response(DatasetSavedOutput(dataset_update(dataset=self.dataset, **changes)).data)


class MemberOutput(serializers.Serializer):
    username = serializers.CharField(source="user.username")
    role = serializers.CharField()


class MemberListApi(DatasetApi):
    admin_methods = frozenset({"POST"})

    class InputSerializer(serializers.Serializer):
        username = serializers.CharField()
        role = serializers.ChoiceField(choices=DatasetMember.Role.choices)

        def validate_username(self, username: str):
            return user_by_username(username)  # its ValidationError becomes this field's 400

    @extend_schema(responses=MemberOutput(many=True))
    def get(self, request: Request, dataset_id: int) -> Response:
        members = self.dataset.memberships.select_related("user").order_by("user__username")
        return Response(MemberOutput(members, many=True).data)

    @extend_schema(request=InputSerializer, responses={201: MemberOutput})
    @idempotent
    def post(self, request: Request, dataset_id: int) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        member = dataset_member_set(dataset=self.dataset, user=data.validated_data["username"], role=data.validated_data["role"])
        return Response(MemberOutput(member).data, status=status.HTTP_201_CREATED)


class MemberDetailApi(DatasetApi):
    admin_methods = frozenset({"PATCH", "DELETE"})

    class InputSerializer(serializers.Serializer):
        role = serializers.ChoiceField(choices=DatasetMember.Role.choices)

    @extend_schema(request=InputSerializer, responses=MemberOutput)
    def patch(self, request: Request, dataset_id: int, username: str) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        member = get_object_or_404(self.dataset.memberships.select_related("user"), user__username=username)
        member = dataset_member_set(dataset=self.dataset, user=member.user, role=data.validated_data["role"])
        return Response(MemberOutput(member).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, dataset_id: int, username: str) -> Response:
        member = get_object_or_404(self.dataset.memberships.select_related("user"), user__username=username)
        dataset_member_remove(dataset=self.dataset, user=member.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
