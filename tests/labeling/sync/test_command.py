"""`manage.py sync_nucleus DATASET [--dry-run]`."""

import io
import json

import nucleus
import pytest
from django.core.management import CommandError, call_command

from labeling.models import CategoryAnnotation
from tests.labeling.sync.support import finish

pytestmark = pytest.mark.django_db
State = CategoryAnnotation.SyncState


def run(*args) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("sync_nucleus", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_dry_run_prints_each_payload_as_a_json_line_and_changes_nothing(linked, items, clothing_type, attributes, fake_nucleus):
    finish(items[0], clothing_type, "shirt", metadata={"note": "été"})
    finish(items[1], attributes, "logo")

    out, err = run(str(linked.id), "--dry-run")

    assert [json.loads(line) for line in out.splitlines()] == [
        nucleus.CategoryAnnotation(label="shirt", reference_id="image_0", taxonomy_name="clothing_type", metadata={"note": "été"}).to_payload(),
        nucleus.CategoryAnnotation(label="False", reference_id="image_1", taxonomy_name="attributes:striped", metadata={}).to_payload(),
        nucleus.CategoryAnnotation(label="True", reference_id="image_1", taxonomy_name="attributes:logo", metadata={}).to_payload(),
    ]
    assert "Would clothing_type: create or update taxonomy clothing_type with labels ['shirt', 'pants', 'dress']" in err
    assert fake_nucleus.requests == []
    assert set(CategoryAnnotation.objects.values_list("sync_state", "sync_claim", "sync_attempts")) == {(State.PENDING, None, 0)}
    clothing_type.refresh_from_db()
    assert clothing_type.nucleus_labels is None


def test_it_syncs_in_the_foreground_and_sums_up(linked, items, clothing_type, fake_nucleus):
    for item in items:
        finish(item, clothing_type, "pants")

    out, err = run(linked.name)

    assert out == f"{linked.name}: 3 synced, 0 failed, 0 to retry (3 payloads in 1 requests).\n"
    assert "Syncing" in err  # the progress bar
    assert len(fake_nucleus.annotations(linked.nucleus_dataset_id)) == 3


def test_it_sends_retries_that_are_not_due_yet(linked, items, clothing_type, fake_nucleus):
    annotation = finish(items[0], clothing_type, "pants")
    fake_nucleus.fail_next(status=503, route="annotate")
    with pytest.raises(CommandError, match="Some annotations were not synced"):
        run(str(linked.id))

    run(str(linked.id))

    annotation.refresh_from_db()
    assert annotation.sync_state == State.SYNCED


def test_it_says_why_it_cannot_sync(linked, settings):
    settings.NUCLEUS_API_KEY = ""
    with pytest.raises(CommandError, match="NUCLEUS_API_KEY is not set"):
        run(str(linked.id))


def test_an_unknown_dataset_is_a_clear_error(db):
    with pytest.raises(CommandError, match="No dataset has the id or the name 'Nope'"):
        run("Nope")
