"""What every dataset-scoped endpoint shares: the permission-checked dataset lookup, and keyset
pagination (`?after=<id>&limit=<n>`)."""

from collections.abc import Callable

from django.db.models import QuerySet
from django.http import Http404
from rest_framework import serializers
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling.api.authentication import DATASET_FOR_USER
from labeling.models import DatasetMember
from labeling.selectors import dataset_get_for_user
from taxonomies.text import validate_name_text

DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE = 100, 1000


class NameField(serializers.CharField):
    """A new name (a dataset's, a taxonomy's): checked as sent, before DRF trims the spaces around
    it, so that a control character at an end is refused rather than dropped."""

    def to_internal_value(self, data):
        validate_name_text(data)
        return super().to_internal_value(data)


class DatasetApi(APIView):
    """Base of the endpoints under datasets/{dataset_id}/.

    Non-members get a 404 for every method (they cannot learn the dataset exists); members who are
    not admins get a 403 for the methods in `admin_methods`.
    """

    admin_methods: frozenset[str] = frozenset()

    def initial(self, request: Request, *args, **kwargs) -> None:
        super().initial(request, *args, **kwargs)
        if hasattr(request, DATASET_FOR_USER):  # token authentication read it with the user
            self.dataset = getattr(request, DATASET_FOR_USER)
            if self.dataset is None:
                raise Http404("No such dataset.")
        else:
            self.dataset = dataset_get_for_user(user=request.user, dataset_id=kwargs["dataset_id"])
        if request.method in self.admin_methods and self.dataset.role != DatasetMember.Role.ADMIN:
            raise PermissionDenied("Only admins of this dataset can do this.")


class PageParams(serializers.Serializer):
    after = serializers.IntegerField(required=False, min_value=0, default=0, help_text="Id to continue after.")
    limit = serializers.IntegerField(required=False, min_value=1, max_value=MAX_PAGE_SIZE, default=DEFAULT_PAGE_SIZE)


def keyset_page(request: Request, queryset: QuerySet, serialize: Callable) -> Response:
    """One page of rows with id > `after`, and the URL of the next page (null on the last one).

    Paging by key rather than offset keeps every page as cheap as the first, however deep."""
    params = PageParams(data=request.query_params)
    params.is_valid(raise_exception=True)
    limit = params.validated_data["limit"]
    rows = list(queryset.filter(id__gt=params.validated_data["after"])[: limit + 1])
    next_url = None
    if len(rows) > limit:
        query = request.query_params.copy()
        query["after"] = rows[limit - 1].id
        next_url = request.build_absolute_uri(f"{request.path}?{query.urlencode()}")
    return Response({"results": [serialize(row) for row in rows[:limit]], "next": next_url})
