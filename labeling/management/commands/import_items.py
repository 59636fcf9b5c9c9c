"""`manage.py import_items DATASET FILE`: add images by URL to a dataset from a JSON, JSONL or CSV file."""

import sys
import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db.models import Q
from tqdm import tqdm

from labeling.errors import BatchInvalid
from labeling.importing import FORMATS, format_from_name, rows_from_file
from labeling.models import Dataset
from labeling.services.images import item_image_sizes_request
from labeling.services.items import batch_problem_count, items_import
from taxonomies.text import unstorable_character

# A refused file lists this many of its problems; the API answer has them all.
SHOWN_PROBLEMS = 20


class Command(BaseCommand):
    help = (
        "Add items to an images dataset from a file of {reference_id, image_url, metadata} rows: a JSON "
        "list, JSON Lines, or CSV (reference_id, image_url, an optional metadata column holding a JSON "
        "object; other columns become metadata keys). All rows are stored, or none: a file with any bad "
        "row is refused with each problem's row index (0 = first row) and field."
    )

    def add_arguments(self, parser):
        parser.add_argument("dataset", help="The dataset's id or its exact name.")
        parser.add_argument("file", help="The file to read, or - for standard input.")
        parser.add_argument(
            "--format",
            dest="file_format",
            choices=FORMATS,
            help="The file's format (default: from its extension: .json, .jsonl or .ndjson, .csv).",
        )

    def handle(self, *args, dataset: str, file: str, file_format: str | None, **options):
        target = self.dataset_named(dataset)
        file_format = file_format or format_from_name(file)
        if file_format is None:
            raise CommandError(f"Cannot tell the format of {file!r}; name it *.json, *.jsonl or *.csv, or pass --format.")
        started = time.perf_counter()
        try:
            rows = self.read(file, file_format=file_format)
            with self.progress_bar(total=len(rows), stream=options.get("stderr") or sys.stderr, verbosity=options["verbosity"]) as bar:
                items = items_import(dataset=target, rows=rows, progress=lambda done: bar.update(done - bar.n))
        except BatchInvalid as error:
            raise CommandError(self.problems(error, source=file)) from None
        item_image_sizes_request(items=items)
        elapsed = time.perf_counter() - started
        rate = len(items) / elapsed if elapsed else 0.0
        self.stdout.write(f"Imported {len(items)} items into {target.name} in {elapsed:.2f} s ({rate:.0f} items/s)")

    def dataset_named(self, name_or_id: str) -> Dataset:
        problem = unstorable_character(name_or_id)
        if problem:
            # An argument that is not UTF-8 arrives with lone surrogates, which no database can look up.
            raise CommandError(f"The dataset argument {problem}.")
        lookup = Q(name=name_or_id)
        if name_or_id.isdigit():
            lookup |= Q(pk=int(name_or_id))
        found = list(Dataset.objects.filter(lookup)[:2])
        if not found:
            raise CommandError(f"No dataset has the id or the name {name_or_id!r}.")
        if len(found) > 1:
            raise CommandError(f"{name_or_id!r} is the id of one dataset and the name of another; pass the other one's id.")
        (target,) = found
        if target.kind != Dataset.Kind.IMAGES:
            raise CommandError(
                f"{target.name} is a scene dataset: its images are frames of scenes. Add scenes with "
                f"POST /api/v1/datasets/{target.id}/scenes/."
            )
        return target

    def read(self, file: str, *, file_format: str) -> list:
        """The file's rows, parsed before any transaction opens."""
        if file == "-":
            return rows_from_file(sys.stdin.buffer, file_format=file_format)
        try:
            with Path(file).open("rb") as handle:
                return rows_from_file(handle, file_format=file_format)
        except OSError as error:
            raise CommandError(f"Cannot read {file}: {error.strerror or error}.") from None

    def progress_bar(self, *, total: int, stream, verbosity: int) -> tqdm:
        """The rows stored so far, on stderr (stdout keeps the one-line summary). It moves once the
        rows are checked: checking 100k rows takes a few seconds, storing them the rest."""
        return tqdm(total=total, unit="rows", desc="Importing", file=stream, disable=verbosity == 0)

    def problems(self, error: BatchInvalid, *, source: str) -> str:
        count = batch_problem_count(error)
        lines = [f"Nothing was imported: {source} has {count} problem{'s' if count != 1 else ''}."]
        # The first SHOWN_PROBLEMS rows are problems: items_import's "... and N more" comes later.
        lines += [f"  {row}" for row in error.rows[:SHOWN_PROBLEMS]]
        if count > SHOWN_PROBLEMS:
            lines.append(f"  ... and {count - SHOWN_PROBLEMS} more.")
        return "\n".join(lines)
