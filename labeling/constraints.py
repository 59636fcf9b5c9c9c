"""A composite foreign key, declared in `Meta.constraints` like any other constraint.

Django has no multi-column foreign key, but several of our invariants span a relation: a chosen label
must belong to the annotation's taxonomy, an annotated item must belong to the annotation's dataset.
Following "copy the key onto the row", the row carries both columns and this constraint makes the
database prove the pair exists in the referenced table (which needs a unique constraint on exactly
those columns). Because it lives in `Meta.constraints`:

- it is part of CREATE TABLE, so SQLite keeps it when Django rebuilds a table in a migration;
- `full_clean()` runs `validate()`, which gives the same rule a readable message before any insert.

The first field must be an ordinary foreign key: it names the referenced model (and keeps Django's
delete ordering right), and the constraint widens it with more columns.

Like SQL's default MATCH SIMPLE, a row with any of the columns NULL is not checked. Like Django's own
foreign keys it is checked at commit (DEFERRABLE INITIALLY DEFERRED): Django's delete cascade does not
order deletions along nullable foreign keys (an item's scene, an annotation's label), so an immediate
check would refuse deleting a dataset whose rows are deleted in a harmless order.
"""

from django.core.exceptions import ValidationError
from django.db import DEFAULT_DB_ALIAS
from django.db.models import BaseConstraint


class CompositeForeignKey(BaseConstraint):
    def __init__(
        self,
        *,
        fields: tuple[str, ...] | list[str],
        to_fields: tuple[str, ...] | list[str],
        name: str,
        violation_error_code: str | None = None,
        violation_error_message: str | None = None,
    ):
        if len(fields) != len(to_fields) or len(fields) < 2:
            raise ValueError("CompositeForeignKey needs two or more fields, as many as to_fields.")
        super().__init__(
            name=name,
            violation_error_code=violation_error_code,
            violation_error_message=violation_error_message,
        )
        self.fields = tuple(fields)
        self.to_fields = tuple(to_fields)

    def _target_model(self, model):
        # Through the foreign key, not an app registry: SQLite rebuilds tables with a throwaway
        # model in a registry of its own, whose relations still point at the real targets.
        return model._meta.get_field(self.fields[0]).related_model

    def constraint_sql(self, model, schema_editor) -> str:
        target = self._target_model(model)
        quote = schema_editor.quote_name
        columns = ", ".join(quote(model._meta.get_field(name).column) for name in self.fields)
        target_columns = ", ".join(quote(target._meta.get_field(name).column) for name in self.to_fields)
        return (
            f"CONSTRAINT {quote(self.name)} FOREIGN KEY ({columns}) "
            f"REFERENCES {quote(target._meta.db_table)} ({target_columns}) DEFERRABLE INITIALLY DEFERRED"
        )

    def create_sql(self, model, schema_editor) -> str:
        table = schema_editor.quote_name(model._meta.db_table)
        return f"ALTER TABLE {table} ADD {self.constraint_sql(model, schema_editor)}"

    def remove_sql(self, model, schema_editor) -> str:
        table = schema_editor.quote_name(model._meta.db_table)
        return f"ALTER TABLE {table} DROP CONSTRAINT {schema_editor.quote_name(self.name)}"

    def validate(self, model, instance, exclude=None, using=DEFAULT_DB_ALIAS) -> None:
        if exclude and set(self.fields) & set(exclude):
            return
        target = self._target_model(model)
        lookup = {}
        for name, target_name in zip(self.fields, self.to_fields):
            value = getattr(instance, model._meta.get_field(name).attname)
            if value is None:
                return
            lookup[target._meta.get_field(target_name).attname] = value
        if not target._default_manager.using(using).filter(**lookup).exists():
            raise ValidationError(self.get_violation_error_message(), code=self.violation_error_code)

    def deconstruct(self):
        path, args, kwargs = super().deconstruct()
        kwargs.update(fields=self.fields, to_fields=self.to_fields)
        return path, args, kwargs

    def __eq__(self, other):
        if not isinstance(other, CompositeForeignKey):
            return NotImplemented
        return self.deconstruct() == other.deconstruct()

    def __repr__(self) -> str:
        return (
            f"<{self.__class__.__name__}: fields={self.fields!r} "
            f"to_fields={self.to_fields!r} name={self.name!r}>"
        )
