"""`manage.py sync_nucleus DATASET [--dry-run] [--push-items]`: send a dataset's pending annotations to Nucleus now."""

import sys

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from labeling.models import Dataset
from labeling.services.sync import (
    dataset_pending_count,
    dataset_sync,
    dataset_sync_preview,
    payload_lines,
    sync_waiting_for_items,
)


class Command(BaseCommand):
    help = (
        "Send the dataset's pending annotations to Nucleus in the foreground, with a progress bar, "
        "including those waiting for a retry. Runs beside the workers safely: each batch is claimed "
        "by one sender. --dry-run prints the payloads it would send, one JSON object a line, and "
        "the taxonomy changes it would make (on stderr), and changes nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("dataset", help="The dataset's id or its exact name.")
        parser.add_argument("--dry-run", action="store_true", help="Print the payloads instead of sending them.")
        parser.add_argument(
            "--push-items", action="store_true",
            help="First append the items or scenes Nucleus does not have yet, and send only the annotations of "
            "those it has (what every sync does for a dataset with nucleus_push_items).",
        )

    def handle(self, *args, dataset: str, dry_run: bool, push_items: bool, **options):
        target = self.find(dataset)
        if dry_run:
            plans, payloads = dataset_sync_preview(dataset=target)
            for line in plans:
                self.stderr.write(f"Would {line}")
            for line in payload_lines(payloads):
                self.stdout.write(line)
            return
        stream = options.get("stderr") or sys.stderr
        with tqdm(total=dataset_pending_count(dataset=target), unit="annotations", desc="Syncing", file=stream,
                  disable=options["verbosity"] == 0) as bar:
            report = dataset_sync(
                dataset=target, include_waiting=True, push_items=push_items or None, on_batch=lambda batch: bar.update(batch.annotations)
            )
        if report.blocked:
            raise CommandError(report.blocked)
        for error in report.errors[:20]:
            self.stderr.write(f"Nucleus: {error}")
        appended = f"{report.items_appended} items or scenes appended to Nucleus, " if report.items_appended else ""
        self.stdout.write(
            f"{target.name}: {appended}{report.synced} synced, {report.failed} failed, {report.retrying} to retry "
            f"({report.payloads} payloads in {report.batches} requests)."
        )
        waiting = sync_waiting_for_items(dataset=target) if push_items or target.nucleus_push_items else 0
        if waiting:
            self.stderr.write(f"{waiting} annotations wait for their item or scene to be appended to Nucleus.")
        if report.failed or report.retrying or waiting:
            raise CommandError("Some annotations were not synced; see the errors above.")

    @staticmethod
    def find(dataset: str) -> Dataset:
        by_name = Dataset.objects.filter(name=dataset).first()
        by_id = Dataset.objects.filter(pk=int(dataset)).first() if dataset.isdigit() else None
        if by_name and by_id and by_name != by_id:
            raise CommandError(f"{dataset!r} is the id of one dataset and the name of another; pass the other one's id.")
        found = by_name or by_id
        if found is None:
            raise CommandError(f"No dataset has the id or the name {dataset!r}.")
        return found
