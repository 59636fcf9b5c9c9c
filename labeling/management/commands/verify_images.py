"""`manage.py verify_images [--dataset ID]`: verify, here and now, the uploads still pending.

With a broker, `celery beat` enqueues again what stays pending (the sweep). In eager mode (`make
run`, no broker) nothing does: an upload request stopped before its verification ran (Ctrl-C, a
worker timeout) leaves its items pending, their tasks waiting. This runs the same verification
(a child process per image, under the IMAGE_VERIFY_* limits) in this process, for every pending
upload however recent.
"""

from django.core.management.base import BaseCommand, CommandError

from labeling.models import Dataset
from labeling.services.images import item_images_verify_pending


class Command(BaseCommand):
    help = (
        "Verify every uploaded image still pending its check (of one dataset with --dataset), in this "
        "process: each passes (its task opens) or fails (image_error says why). For eager mode, where "
        "no celery beat re-runs the verification of uploads left pending."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dataset", type=int, help="Only this dataset's uploads.")

    def handle(self, *args, dataset: int | None, **options):
        if dataset is not None and not Dataset.objects.filter(pk=dataset).exists():
            raise CommandError(f"There is no dataset {dataset}.")
        counts = item_images_verify_pending(dataset_id=dataset)
        self.stdout.write(f"{counts['ok']} image(s) passed their check, {counts['failed']} failed.")
