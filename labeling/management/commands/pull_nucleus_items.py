"""`manage.py pull_nucleus_items DATASET [--dry-run]`: import the items of the linked Nucleus dataset."""

import sys

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from labeling import nucleus
from labeling.models import Dataset
from labeling.selectors import dataset_list_by_id_or_name
from labeling.services.nucleus_items import nucleus_items_pull, nucleus_pull_total
from labeling.services.sync import sync_blocker

# A pull with refused rows lists this many of them.
SHOWN_PROBLEMS = 20


def linked_dataset(name_or_id: str) -> Dataset:
    """The dataset named by id or name, which must be linked to a Nucleus dataset, with an API key set."""
    found = dataset_list_by_id_or_name(name_or_id=name_or_id)
    if not found:
        raise CommandError(f"No dataset has the id or the name {name_or_id!r}.")
    if len(found) > 1:
        raise CommandError(f"{name_or_id!r} is the id of one dataset and the name of another; pass the other one's id.")
    blocker = sync_blocker(dataset=found[0])
    if blocker:
        raise CommandError(blocker)
    return found[0]


class Command(BaseCommand):
    help = (
        "Import the items (reference_id, image URL, metadata) of the Nucleus dataset that DATASET is "
        "linked to, so that they can be labeled here; for a scene dataset, its video scenes (scenes "
        "made of frames cannot be read through the SDK's export). reference_ids already here are "
        "skipped. Rows are stored a batch at a time, each batch all or nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("dataset", help="The dataset's id or its exact name.")
        parser.add_argument("--dry-run", action="store_true", help="List what would be imported; store nothing.")

    def handle(self, *args, dataset: str, dry_run: bool, **options):
        target = linked_dataset(dataset)
        stream = options.get("stderr") or sys.stderr
        try:
            total = nucleus_pull_total(dataset=target)
            with tqdm(total=total, unit="rows", desc="Pulling", file=stream, disable=options["verbosity"] == 0) as bar:
                report = nucleus_items_pull(dataset=target, dry_run=dry_run, progress=lambda done: bar.update(done - bar.n))
        except nucleus.NucleusFault as fault:
            raise CommandError(f"Nucleus: {fault.message} Run the command again: what was stored stays, and is skipped.") from None
        for reference_id, location in report.would_import:
            self.stdout.write(f"{reference_id}\t{location}")
        verb = "Would import" if dry_run else "Imported"
        count = len(report.would_import) if dry_run else report.imported
        self.stdout.write(
            f"{target.name}: {verb} {count} of {report.found} on Nucleus; {report.already_here} already here (skipped)."
        )
        problems = [f"  {row}" for row in report.refused[:SHOWN_PROBLEMS]]
        if report.not_pullable:
            problems.append(
                f"  {len(report.not_pullable)} scenes are made of frames, which the SDK's scene export does not give: "
                + ", ".join(report.not_pullable[:SHOWN_PROBLEMS])
            )
        if problems:
            heading = f"Not imported ({len(report.refused)} problems in refused batches; index = position on Nucleus):"
            raise CommandError("\n".join([heading, *problems]))
