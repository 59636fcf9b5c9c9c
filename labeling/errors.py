"""Errors that name the row and field of a batch, so one answer lists every problem at once."""

from dataclasses import dataclass

from django.core.exceptions import ValidationError


@dataclass(frozen=True)
class RowError:
    index: int | None
    field: str
    message: str

    def as_dict(self) -> dict:
        found = {"field": self.field, "message": self.message}
        return found if self.index is None else {"index": self.index, **found}

    def __str__(self) -> str:
        where = self.field if self.index is None else f"row {self.index}, {self.field}"
        return f"{where}: {self.message}"


class BatchInvalid(ValidationError):
    """A batch with at least one bad row; nothing of it was stored.

    A ValidationError, so callers that only know Django's errors still show every message.
    """

    def __init__(self, rows: list[RowError]):
        self.rows = rows
        super().__init__([str(row) for row in rows])


def row_errors_from(error: ValidationError, *, index: int | None, default_field: str) -> list[RowError]:
    """Turn a ValidationError of one row into RowErrors, keeping the field names it carries."""
    if hasattr(error, "error_dict"):
        return [
            RowError(index=index, field=default_field if field == "__all__" else field, message=message)
            for field, messages in error.message_dict.items()
            for message in messages
        ]
    return [RowError(index=index, field=default_field, message=message) for message in error.messages]
