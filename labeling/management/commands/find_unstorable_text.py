"""`manage.py find_unstorable_text [--dataset ID]`: report rows stored before text was checked at the
edge that hold what it now refuses (taxonomies.text): NUL or a lone surrogate anywhere, a control
character in a name, a reference_id "." or "..".

Such rows exist only where the database took them: SQLite stores NUL and, inside JSON, lone
surrogates (whose every read then answers 500); PostgreSQL refuses both, but took control
characters in names. Each finding is printed as `Model id field: problem`; the exit status is 1
when there is any, so a script can tell.
"""

from collections.abc import Iterator
from dataclasses import dataclass

from django.core.management.base import BaseCommand, CommandError
from django.db import models

from audit.models import AuditEvent
from labeling.models import CategoryAnnotation, Dataset, IdempotentRequest, Item, NucleusTaxonomyDeletion, Scene
from labeling.validators import DOT_SEGMENTS
from taxonomies.models import Label, Taxonomy
from taxonomies.text import unstorable_character, unstorable_paths


@dataclass(frozen=True)
class Scan:
    model: type[models.Model]
    dataset_lookup: str | None  # how a row names its dataset, for --dataset; None: no dataset
    names: tuple[str, ...] = ()
    texts: tuple[str, ...] = ()
    documents: tuple[str, ...] = ()  # JSON columns, walked at any depth
    reference_ids: bool = False


SCANS = (
    Scan(Dataset, "id", names=("name",), texts=("nucleus_dataset_id",)),
    # Frames are items of a scene.
    Scan(Item, "dataset_id", names=("reference_id",), texts=("image_url", "image_error"), documents=("metadata",), reference_ids=True),
    Scan(Scene, "dataset_id", names=("reference_id",), texts=("video_url",), documents=("metadata",), reference_ids=True),
    Scan(Taxonomy, "dataset_id", names=("taxonomy_name",), texts=("nucleus_taxonomy_name",), documents=("nucleus_labels",)),
    Scan(Label, "taxonomy__dataset_id", names=("name",), texts=("hotkey",)),
    Scan(CategoryAnnotation, "dataset_id", texts=("sync_error",), documents=("metadata",)),
    Scan(AuditEvent, "dataset_id", texts=("actor_username", "reference_id", "taxonomy_name"), documents=("before", "after")),
    Scan(NucleusTaxonomyDeletion, "dataset_id", texts=("taxonomy_name",)),
    # A stored answer is replayed to retries: one holding a lone surrogate would replay a 500.
    Scan(IdempotentRequest, None, texts=("key", "path"), documents=("body",)),
)


class Command(BaseCommand):
    help = (
        "Report stored rows whose text the API now refuses: NUL (U+0000) or a lone surrogate "
        "(U+D800-U+DFFF) in any text or JSON (keys and values at any depth), another C0/C1 control "
        "character in a name (dataset, taxonomy, label, reference_id), a reference_id '.' or '..'. "
        "One line per finding (model, id, field path, the character); exit status 1 if any."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dataset", type=int, help="Only this dataset's rows (and no idempotency records).")

    def handle(self, *args, dataset: int | None, **options):
        found = 0
        for scan in SCANS:
            for pk, field, problem in findings(scan, dataset_id=dataset):
                self.stdout.write(f"{scan.model.__name__} {pk} {field}: {problem}")
                found += 1
        if found:
            raise CommandError(f"{found} stored value{'s' if found != 1 else ''} hold text that cannot be stored the same way on every database.")
        self.stdout.write("No stored text breaks the rules.")


def findings(scan: Scan, *, dataset_id: int | None) -> Iterator[tuple[int, str, str]]:
    if dataset_id is not None and scan.dataset_lookup is None:
        return
    rows = scan.model.objects.all()
    if dataset_id is not None:
        rows = rows.filter(**{scan.dataset_lookup: dataset_id})
    fields = [*scan.names, *scan.texts, *scan.documents]
    for pk, *values in rows.order_by("pk").values_list("pk", *fields).iterator(chunk_size=2000):
        row = dict(zip(fields, values))
        for field in scan.names:
            problem = _name_problem(row[field], reference_id=scan.reference_ids)
            if problem:
                yield pk, field, problem
        for field in scan.texts:
            problem = unstorable_character(row[field]) if isinstance(row[field], str) else None
            if problem:
                yield pk, field, f"This text {problem}."
        for field in scan.documents:
            for path, problem in unstorable_paths(row[field], field):
                yield pk, path, problem


def _name_problem(value, *, reference_id: bool) -> str | None:
    if not isinstance(value, str):
        return None
    problem = unstorable_character(value, name=True)
    if problem:
        return f"This name {problem}."
    if reference_id and value in DOT_SEGMENTS:
        return f"The reference_id {value!r} cannot round-trip through URLs."
    return None
