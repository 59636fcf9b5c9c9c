"""Which database constraint refused a write, by name, on PostgreSQL and on SQLite.

A test that only expects an IntegrityError passes when any constraint refuses the row, including one
it never meant to test (or a NOT NULL the row forgot): the constraint under test could be gone.

PostgreSQL names the constraint (or unique index) in the error. SQLite names a CHECK, names a UNIQUE by
its columns (or an expression index by its name), and says only "FOREIGN KEY constraint failed" at
commit: its foreign key violations are read with `PRAGMA foreign_key_check` just before the commit."""

import re

import pytest
from django.apps import apps
from django.db import IntegrityError, connection, models, transaction

from labeling.constraints import CompositeForeignKey


def refused_by_database(constraint: str, make_row) -> None:
    """`make_row()` is refused by the constraint named `constraint` (and the transaction rolled back).
    Deferred foreign keys are checked at commit, so for them the caller's test must really commit."""
    model, declared = _declared(constraint)
    violated: list[str] = []
    with pytest.raises(IntegrityError) as refusal, transaction.atomic():
        make_row()
        if connection.vendor == "sqlite":
            violated = _sqlite_foreign_key_violations()
    assert constraint in (violated or _named_in(refusal.value, model, declared)), (
        f"refused by another constraint than {constraint}: {refusal.value} {violated or ''}"
    )


def _declared(name: str) -> tuple[type[models.Model], models.BaseConstraint]:
    for model in apps.get_models():
        for constraint in model._meta.constraints:
            if constraint.name == name:
                return model, constraint
    raise AssertionError(f"No model declares a constraint named {name!r}")


def _named_in(error: IntegrityError, model, declared) -> list[str]:
    """The constraints the error names (SQLite: a UNIQUE named by its columns is the declared one when
    the columns are the declared constraint's)."""
    if connection.vendor == "postgresql":
        return [error.__cause__.diag.constraint_name]
    message = str(error)
    if match := re.fullmatch(r"CHECK constraint failed: (\S+)", message):
        return [match.group(1)]
    if match := re.fullmatch(r"UNIQUE constraint failed: index '(\S+)'", message):
        return [match.group(1)]
    if match := re.fullmatch(r"UNIQUE constraint failed: (.+)", message):
        columns = [column.split(".", 1) for column in match.group(1).split(", ")]
        if isinstance(declared, models.UniqueConstraint) and declared.fields:
            wanted = [[model._meta.db_table, model._meta.get_field(field).column] for field in declared.fields]
            if columns == wanted:
                return [declared.name]
    return []


def _sqlite_foreign_key_violations() -> list[str]:
    """The composite foreign keys the open transaction violates, by name (Django's own foreign keys,
    unnamed, by table and column)."""
    by_columns = {
        (model._meta.db_table, tuple(model._meta.get_field(field).column for field in constraint.fields)): constraint.name
        for model in apps.get_models()
        for constraint in model._meta.constraints
        if isinstance(constraint, CompositeForeignKey)
    }
    names = []
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA foreign_key_check")
        for table, fk_id in {(row[0], row[3]) for row in cursor.fetchall()}:
            cursor.execute(f"PRAGMA foreign_key_list({connection.ops.quote_name(table)})")
            columns = tuple(row[3] for row in sorted(cursor.fetchall(), key=lambda row: row[1]) if row[0] == fk_id)
            names.append(by_columns.get((table, columns), f"{table}({', '.join(columns)})"))
    return names
