"""Token authentication for the API: DRF's rules, read with one raw query that also brings the
dataset the URL names, with the user's role in it.

Every API request authenticates, and nearly every one is under datasets/{dataset_id}/, where the
membership is the next thing read. The ORM compiling the token-and-user join and then the
membership join cost about 1 ms of CPU and two round trips per request, a fifth of a labeling
request; one raw query does both. An unknown key or an inactive user is a 401 with DRF's messages.
"""

from django.contrib.auth import get_user_model
from django.db import connection
from django.utils.translation import gettext_lazy as _
from rest_framework import authentication, exceptions
from rest_framework.authtoken.models import Token

from labeling.models import Dataset, DatasetMember
from labeling.selectors import dataset_id_storable, dataset_membership_sql

# Set on the request when the URL names a dataset: that Dataset with `role`, or None when the user
# may not see it. Read by `labeling.api.base.DatasetApi`, which otherwise looks the dataset up itself.
DATASET_FOR_USER = "dataset_for_user"


class TokenAuthentication(authentication.TokenAuthentication):
    def authenticate(self, request):
        # DRF's header parsing, then `authenticate_credentials`; the URL's dataset_id is read here.
        self._dataset_id = (request.parser_context or {}).get("kwargs", {}).get("dataset_id")
        # An id too big to store names no dataset: the query gets NULL, the view answers 404.
        self._dataset_in_query = self._dataset_id if self._dataset_id is not None and dataset_id_storable(self._dataset_id) else None
        self._request = request
        return super().authenticate(request)

    def authenticate_credentials(self, key):
        user_model = get_user_model()
        quote = connection.ops.quote_name
        user_fields = user_model._meta.concrete_fields
        dataset_fields = Dataset._meta.concrete_fields
        columns = [f"u.{quote(field.column)}" for field in user_fields] + [f"d.{quote(field.column)}" for field in dataset_fields]
        role, joins = dataset_membership_sql(user_alias="u")
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT {', '.join(columns)}, {role} "
                f"FROM {quote(Token._meta.db_table)} t "
                f"JOIN {quote(user_model._meta.db_table)} u ON u.{quote(user_model._meta.pk.column)} = t.user_id "
                f"{joins} WHERE t.key = %s",
                [DatasetMember.Role.ADMIN, self._dataset_in_query, self._dataset_in_query, key],
            )
            row = cursor.fetchone()
        if row is None:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        row = _converted(row[:-1], [*user_fields, *dataset_fields]) + [row[-1]]
        user_values, dataset_values, role = row[: len(user_fields)], row[len(user_fields) : -1], row[-1]
        user = user_model.from_db(connection.alias, [field.attname for field in user_fields], user_values)
        if not user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        if self._dataset_id is not None:
            dataset = None
            if dataset_values[0] is not None:
                dataset = Dataset.from_db(connection.alias, [field.attname for field in dataset_fields], dataset_values)
                dataset.role = role
            setattr(self._request, DATASET_FOR_USER, dataset)
        return user, Token(key=key, user=user)


def _converted(values, fields) -> list:
    """Values as the ORM would give them (e.g. SQLite's datetimes made aware), by the same converters."""
    compiler = Dataset.objects.none().query.get_compiler(connection.alias)
    converters = compiler.get_converters([field.get_col(field.model._meta.db_table) for field in fields])
    return list(next(iter(compiler.apply_converters([list(values)], converters))))
