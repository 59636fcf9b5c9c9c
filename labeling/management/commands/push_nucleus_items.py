"""`manage.py push_nucleus_items DATASET [--dry-run]`: append local items or scenes to the linked Nucleus dataset."""

import sys

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from labeling.management.commands.pull_nucleus_items import linked_dataset
from labeling.services.nucleus_items import PUSH_BATCH_SIZE, nucleus_items_pending_count, nucleus_items_push

SHOWN_ERRORS = 20


class Command(BaseCommand):
    help = (
        "Append the dataset's items (or scenes: videos, or frames) that Nucleus does not have yet to the "
        "linked Nucleus dataset, with update=False, so that their annotations can be synced. Each one "
        "Nucleus takes is recorded and not sent again. Uploaded images are given as PUBLIC_MEDIA_URL + "
        "their stored name."
    )

    def add_arguments(self, parser):
        parser.add_argument("dataset", help="The dataset's id or its exact name.")
        parser.add_argument("--dry-run", action="store_true", help="List what would be sent; send nothing.")
        parser.add_argument("--batch-size", type=int, default=PUSH_BATCH_SIZE, help="Items per append job.")

    def handle(self, *args, dataset: str, dry_run: bool, batch_size: int, **options):
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        target = linked_dataset(dataset)
        stream = options.get("stderr") or sys.stderr
        total = nucleus_items_pending_count(dataset=target)
        with tqdm(total=total, unit="rows", desc="Pushing", file=stream, disable=options["verbosity"] == 0) as bar:
            report = nucleus_items_push(
                dataset=target, batch_size=batch_size, dry_run=dry_run, progress=lambda done: bar.update(done - bar.n)
            )
        if report.blocked:
            raise CommandError(report.blocked)
        for reference_id, location in report.would_upload:
            self.stdout.write(f"{reference_id}\t{location}")
        if dry_run:
            self.stdout.write(f"{target.name}: would append {len(report.would_upload)} to Nucleus.")
            return
        for error in report.errors[:SHOWN_ERRORS]:
            self.stderr.write(f"Nucleus: {error}")
        self.stdout.write(
            f"{target.name}: {report.uploaded} appended to Nucleus, {report.failed} not ({report.batches} jobs)."
        )
        if report.failed:
            raise CommandError("Some were not appended; see the errors above. Run the command again to retry them.")
