"""Reading batches of rows from files: a JSON list, JSON Lines, or CSV.

CSV columns: `reference_id`, `image_url`, an optional `metadata` column holding a JSON object, and
any other column, which becomes a metadata key with the cell's text as its value (empty cells are
left out). Problems are reported with the row's index (0 for the first data row or line).

JSON Lines and CSV are read as a stream, one line at a time, so a 100k-line file is never held as
text and as rows at once; a JSON list has to be read whole.
"""

import csv
import io
import json
from collections.abc import Iterable
from typing import BinaryIO

from labeling.errors import BatchInvalid, RowError
from labeling.validators import unstorable_text_errors
from taxonomies.text import unstorable_character

FORMATS = ("json", "jsonl", "csv")
# What json.loads raises for text that is not JSON it can read: a syntax error (JSONDecodeError),
# an integer of more than 4300 digits (ValueError), nesting deeper than the interpreter's
# recursion limit (RecursionError).
NOT_JSON = (ValueError, RecursionError)


def format_from_name(name: str) -> str | None:
    suffix = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    return {"json": "json", "jsonl": "jsonl", "ndjson": "jsonl", "csv": "csv"}.get(suffix)


def rows_from_bytes(data: bytes, *, file_format: str) -> list:
    """The rows of a file held in memory, or BatchInvalid naming every line that could not be read."""
    return rows_from_file(io.BytesIO(data), file_format=file_format)


def rows_from_file(file: BinaryIO, *, file_format: str) -> list:
    """The rows of a binary file (UTF-8, with or without a BOM), or BatchInvalid naming every line
    that could not be read. The file is left open."""
    if file_format not in FORMATS:
        raise BatchInvalid([RowError(index=None, field="file", message=f"Unknown format; use one of {', '.join(FORMATS)}.")])
    # newline="": the csv module reads line ends itself (a quoted cell may hold one).
    text = io.TextIOWrapper(file, encoding="utf-8-sig", newline="" if file_format == "csv" else None)
    try:
        if file_format == "json":
            return _storable(_rows_from_json(text))
        if file_format == "jsonl":
            return _storable(_rows_from_lines(text))
        return _storable(_rows_from_csv(text))
    except UnicodeDecodeError as error:
        raise BatchInvalid([RowError(index=None, field="file", message=f"The file is not UTF-8 text ({error.reason}).")]) from None
    finally:
        text.detach()


def _storable(rows: list) -> list:
    """The rows, or BatchInvalid naming each row and field whose text cannot be stored (taxonomies.text)."""
    errors = unstorable_text_errors(rows)
    if errors:
        raise BatchInvalid(errors)
    return rows


def _rows_from_json(text: io.TextIOBase) -> list:
    try:
        rows = json.loads(text.read())
    except UnicodeDecodeError:
        raise
    except NOT_JSON as error:
        raise BatchInvalid([RowError(index=None, field="file", message=_not_json(error))]) from None
    if not isinstance(rows, list):
        raise BatchInvalid([RowError(index=None, field="file", message="A JSON file holds a list of rows.")])
    return rows


def _not_json(error: Exception) -> str:
    if isinstance(error, RecursionError):
        return "Not valid JSON: nested too deeply."
    return f"Not valid JSON: {error}."


def _rows_from_lines(lines: Iterable[str]) -> list:
    """One JSON value per line; blank lines are skipped and not counted in the row index."""
    rows, errors = [], []
    for index, line in enumerate(line for line in lines if line.strip()):
        try:
            rows.append(json.loads(line))
        except NOT_JSON as error:
            errors.append(RowError(index=index, field="", message=_not_json(error)))
    if errors:
        raise BatchInvalid(errors)
    return rows


def _rows_from_csv(text: io.TextIOBase) -> list:
    reader = csv.DictReader(text)
    try:
        return _rows_from_csv_reader(reader)
    except csv.Error as error:
        # A cell over the csv module's size limit, an unterminated quote at the end of the file.
        raise BatchInvalid([RowError(index=None, field="file", message=f"Not valid CSV (line {reader.line_num}): {error}.")]) from None


def _rows_from_csv_reader(reader: csv.DictReader) -> list:
    if not reader.fieldnames or "reference_id" not in reader.fieldnames:
        raise BatchInvalid([RowError(index=None, field="file", message="The CSV needs a header row with a reference_id column.")])
    # A column's name is a key of every row: said once, not once a row.
    header_errors = [
        RowError(index=None, field="file", message=f"Column {position + 1} of the header {problem}.")
        for position, name in enumerate(reader.fieldnames)
        if (problem := unstorable_character(name))
    ]
    if header_errors:
        raise BatchInvalid(header_errors)
    rows, errors = [], []
    for index, record in enumerate(reader):
        if None in record:
            errors.append(RowError(index=index, field="", message="This row has more cells than the header has columns."))
            continue
        metadata = {}
        if record.get("metadata"):
            try:
                metadata = json.loads(record["metadata"])
            except NOT_JSON as error:
                errors.append(RowError(index=index, field="metadata", message=_not_json(error)))
                continue
            if not isinstance(metadata, dict):
                errors.append(RowError(index=index, field="metadata", message="metadata must be a JSON object."))
                continue
        extra = {key: value for key, value in record.items() if key not in {"reference_id", "image_url", "metadata"} and value != ""}
        rows.append({"reference_id": record["reference_id"], "image_url": record.get("image_url") or "", "metadata": {**extra, **metadata}})
    if errors:
        raise BatchInvalid(errors)
    return rows
