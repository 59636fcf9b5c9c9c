"""audit_event_page: each filter of the audit page is served by an index."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from audit.selectors import audit_event_page

pytestmark = pytest.mark.django_db


def query_plan(sql: str) -> str:
    """The database's plan for `sql`, as text. PostgreSQL is told to avoid sequential scans, which
    it would rightly prefer on a table this small."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute("EXPLAIN " + sql)
        else:
            cursor.execute("EXPLAIN QUERY PLAN " + sql)
        return "\n".join(" ".join(str(column) for column in row) for row in cursor.fetchall())


@pytest.mark.parametrize(
    ("filters", "index"),
    [
        ({"actor": "bob"}, "audit_event_dataset_actor_name"),
        ({"action": "label.add"}, "audit_event_dataset_action"),
        ({"reference_id": "img-1"}, "audit_event_dataset_reference"),
    ],
)
def test_each_filter_of_the_page_is_served_by_its_index(dataset, filters, index):
    with CaptureQueriesContext(connection) as queries:  # the page's one SELECT
        audit_event_page(dataset_id=dataset.id, before_id=0, limit=50, **filters)

    [query] = queries
    assert index in query_plan(query["sql"])
