"""Reading batches of rows from files: a JSON list, JSON Lines, or CSV.

CSV columns: `reference_id`, `image_url`, an optional `metadata` column holding a JSON object, and
any other column, which becomes a metadata key with the cell's text as its value (empty cells are
left out). Problems are reported with the row's index (0 for the first data row or line).
"""

import csv
import io
import json
from collections.abc import Iterable

from labeling.errors import BatchInvalid, RowError

FORMATS = ("json", "jsonl", "csv")


def format_from_name(name: str) -> str | None:
    suffix = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    return {"json": "json", "jsonl": "jsonl", "ndjson": "jsonl", "csv": "csv"}.get(suffix)


def rows_from_bytes(data: bytes, *, file_format: str) -> list:
    """The rows of a file, or BatchInvalid naming every line that could not be read."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise BatchInvalid([RowError(index=None, field="file", message=f"The file is not UTF-8 text ({error.reason}).")]) from None
    if file_format == "json":
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as error:
            raise BatchInvalid([RowError(index=None, field="file", message=f"Not valid JSON: {error}.")]) from None
        if not isinstance(rows, list):
            raise BatchInvalid([RowError(index=None, field="file", message="A JSON file holds a list of rows.")])
        return rows
    if file_format == "jsonl":
        return _rows_from_lines(text.splitlines())
    if file_format == "csv":
        return _rows_from_csv(text)
    raise BatchInvalid([RowError(index=None, field="file", message=f"Unknown format; use one of {', '.join(FORMATS)}.")])


def _rows_from_lines(lines: Iterable[str]) -> list:
    rows, errors = [], []
    for index, line in enumerate(line for line in lines if line.strip()):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as error:
            errors.append(RowError(index=index, field="", message=f"Not valid JSON: {error}."))
    if errors:
        raise BatchInvalid(errors)
    return rows


def _rows_from_csv(text: str) -> list:
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames or "reference_id" not in reader.fieldnames:
        raise BatchInvalid([RowError(index=None, field="file", message="The CSV needs a header row with a reference_id column.")])
    rows, errors = [], []
    for index, record in enumerate(reader):
        if None in record:
            errors.append(RowError(index=index, field="", message="This row has more cells than the header has columns."))
            continue
        metadata = {}
        if record.get("metadata"):
            try:
                metadata = json.loads(record["metadata"])
            except json.JSONDecodeError as error:
                errors.append(RowError(index=index, field="metadata", message=f"Not valid JSON: {error}."))
                continue
            if not isinstance(metadata, dict):
                errors.append(RowError(index=index, field="metadata", message="metadata must be a JSON object."))
                continue
        extra = {key: value for key, value in record.items() if key not in {"reference_id", "image_url", "metadata"} and value != ""}
        rows.append({"reference_id": record["reference_id"], "image_url": record.get("image_url") or "", "metadata": {**extra, **metadata}})
    if errors:
        raise BatchInvalid(errors)
    return rows
