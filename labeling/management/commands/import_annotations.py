"""`manage.py import_annotations DATASET FILE --as USERNAME`: bring existing labels in from a JSON or
JSON Lines file, as POST datasets/{id}/annotations/ does with that user's token."""

import sys
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.http import Http404

from labeling.errors import BatchInvalid
from labeling.importing import format_from_name, rows_from_file
from labeling.selectors import dataset_get_for_user, dataset_list_by_id_or_name
from labeling.services.annotations_import import annotations_import
from labeling.services.ownership import WriteRefused

FORMATS = ("json", "jsonl")
# A refused file lists this many of its problems.
SHOWN_PROBLEMS = 20


class Command(BaseCommand):
    help = (
        "Create or update finished annotations from a file of {reference_id, taxonomy_name, label | labels, "
        "metadata} rows (a JSON list or JSON Lines), written as USERNAME: the same ownership rule as the "
        "API applies to that user's role in the dataset (an admin may write anything, a labeler only the "
        "items they hold and their own finished work). All rows are stored, or none."
    )

    def add_arguments(self, parser):
        parser.add_argument("dataset", help="The dataset's id or its exact name.")
        parser.add_argument("file", help="The file to read, or - for standard input.")
        parser.add_argument("--as", dest="username", required=True, help="The member of the dataset the annotations are written by.")
        parser.add_argument("--format", dest="file_format", choices=FORMATS, help="The file's format (default: from its extension).")

    def handle(self, *args, dataset: str, file: str, username: str, file_format: str | None, **options):
        found = dataset_list_by_id_or_name(name_or_id=dataset)
        if len(found) != 1:
            raise CommandError(f"No single dataset has the id or the name {dataset!r}.")
        user = get_user_model().objects.filter(username=username).first()
        try:
            target = dataset_get_for_user(user=user, dataset_id=found[0].pk) if user is not None else None
        except Http404:
            target = None
        if target is None:
            raise CommandError(f"{username!r} is not a member of {found[0].name}.")
        file_format = file_format or format_from_name(file)
        if file_format not in FORMATS:
            raise CommandError(f"Cannot tell the format of {file!r}; name it *.json or *.jsonl, or pass --format.")
        try:
            rows = self.read(file, file_format=file_format)
            saved = annotations_import(dataset=target, rows=rows, annotator=user, role=target.role)
        except (BatchInvalid, WriteRefused) as error:
            raise CommandError(self.problems(error.rows, source=file)) from None
        changed = sum(result.changed for result in saved)
        self.stdout.write(f"Imported {len(saved)} annotations into {target.name} as {username} ({changed} new or changed)")

    def read(self, file: str, *, file_format: str) -> list:
        if file == "-":
            return rows_from_file(sys.stdin.buffer, file_format=file_format)
        try:
            with Path(file).open("rb") as handle:
                return rows_from_file(handle, file_format=file_format)
        except OSError as error:
            raise CommandError(f"Cannot read {file}: {error.strerror or error}.") from None

    def problems(self, rows: list, *, source: str) -> str:
        lines = [f"Nothing was imported: {source} has {len(rows)} problem{'s' if len(rows) != 1 else ''}."]
        lines += [f"  {row}" for row in rows[:SHOWN_PROBLEMS]]
        if len(rows) > SHOWN_PROBLEMS:
            lines.append(f"  ... and {len(rows) - SHOWN_PROBLEMS} more.")
        return "\n".join(lines)
