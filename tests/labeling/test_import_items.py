"""Importing items in bulk: `manage.py import_items` and the row checks of `items_import` behind it."""

import io
import json
import sys

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, ManagementUtility, call_command
from django.core.management import base as base_command
from django.db import connection, models
from django.test.utils import CaptureQueriesContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labeling.errors import BatchInvalid
from labeling.models import Dataset, Item, Scene, Task, http_url_validator
from labeling.services import items as items_service
from labeling.services.items import _field_errors, _sufficient_check, items_import
from labeling.validators import validate_metadata, validate_reference_id
from tests.factories import DatasetFactory, SceneFactory

ROWS = [
    {"reference_id": "image_1", "image_url": "https://images.example.com/1.jpg", "metadata": {"camera": {"side": "front", "iso": 200}}},
    {"reference_id": "imäge_2", "image_url": "http://images.example.com/2.jpg", "metadata": {"note": "été ✓"}},
    {"reference_id": "image_3", "image_url": "https://images.example.com/3.jpg"},
]


def url_row(n: int, **fields) -> dict:
    return {"reference_id": f"image_{n}", "image_url": f"https://images.example.com/{n}.jpg", **fields}


def write_jsonl(path, rows) -> str:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return str(path)


def run(*args) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("import_items", *[str(arg) for arg in args], stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def stored(dataset) -> list[tuple]:
    return list(Item.objects.filter(dataset=dataset).order_by("id").values_list("reference_id", "image_url", "metadata"))


@pytest.mark.django_db
class TestTheCommand:
    def test_it_imports_json_lines_with_a_progress_bar_and_a_summary(self, dataset, tmp_path):
        out, err = run(dataset.name, write_jsonl(tmp_path / "rows.jsonl", ROWS))

        assert stored(dataset) == [(row["reference_id"], row["image_url"], row.get("metadata", {})) for row in ROWS]
        assert out.startswith(f"Imported 3 items into {dataset.name} in ") and out.rstrip().endswith("items/s)")
        assert "3/3" in err

    def test_it_imports_a_json_list_given_the_dataset_id(self, dataset, tmp_path):
        path = tmp_path / "rows.json"
        path.write_text(json.dumps(ROWS), encoding="utf-8")

        run(dataset.id, path)

        assert [reference_id for reference_id, _, _ in stored(dataset)] == ["image_1", "imäge_2", "image_3"]

    def test_it_imports_csv_with_extra_columns_as_metadata(self, dataset, tmp_path):
        path = tmp_path / "rows.csv"
        path.write_text(
            'reference_id,image_url,camera,metadata\nimage_1,https://images.example.com/1.jpg,front,"{""iso"": 200}"\n',
            encoding="utf-8",
        )

        run(dataset.name, path)

        assert stored(dataset) == [("image_1", "https://images.example.com/1.jpg", {"camera": "front", "iso": 200})]

    def test_it_reads_standard_input_with_an_explicit_format(self, dataset, monkeypatch):
        stdin = io.TextIOWrapper(io.BytesIO("".join(json.dumps(row) + "\n" for row in ROWS).encode()))
        monkeypatch.setattr(sys, "stdin", stdin)

        run(dataset.name, "-", "--format", "jsonl")

        assert Item.objects.filter(dataset=dataset).count() == 3

    def test_every_imported_item_gets_an_open_task_in_its_dataset(self, dataset, tmp_path):
        run(dataset.name, write_jsonl(tmp_path / "rows.jsonl", ROWS))

        tasks = Task.objects.filter(item__dataset=dataset)
        assert sorted(tasks.values_list("item__reference_id", flat=True)) == sorted(row["reference_id"] for row in ROWS)
        assert set(tasks.values_list("dataset_id", "state", "holder", "lease_expires_at", "done_at")) == {
            (dataset.id, Task.State.OPEN, None, None, None)
        }

    def test_bad_rows_are_listed_with_index_and_field_and_nothing_is_stored(self, dataset, tmp_path):
        rows = [url_row(0), url_row(1, image_url="ftp://images.example.com/1.jpg"), url_row(2, metadata={"score": "NaN"}), url_row(0)]
        path = tmp_path / "rows.jsonl"
        # json.dumps would write NaN for float("nan"); the file says it the way JSON exporters do.
        path.write_text("\n".join(json.dumps(row) for row in rows).replace('"NaN"', "NaN"), encoding="utf-8")

        with pytest.raises(CommandError) as error:
            run(dataset.name, path)

        assert str(error.value).splitlines() == [
            f"Nothing was imported: {path} has 4 problems.",
            "  row 1, image_url: Only http and https URLs are accepted.",
            "  row 2, metadata: metadata contains NaN or Infinity (at metadata['score']); use null or a finite number.",
            "  row 0, reference_id: 'image_0' appears more than once in this batch.",
            "  row 3, reference_id: 'image_0' appears more than once in this batch.",
        ]
        assert not Item.objects.exists() and not Task.objects.exists()

    def test_it_lists_the_first_twenty_problems_and_counts_the_rest(self, dataset, tmp_path):
        rows = [url_row(n, image_url=f"ftp://images.example.com/{n}.jpg") for n in range(25)]

        with pytest.raises(CommandError) as error:
            run(dataset.name, write_jsonl(tmp_path / "rows.jsonl", rows))

        lines = str(error.value).splitlines()
        assert lines[0].endswith("has 25 problems.")
        assert lines[1] == "  row 0, image_url: Only http and https URLs are accepted."
        assert lines[20] == "  row 19, image_url: Only http and https URLs are accepted."
        assert lines[21:] == ["  ... and 5 more."]

    def test_it_counts_problems_past_those_the_service_lists(self, dataset, tmp_path):
        rows = [url_row(n, image_url="ftp://images.example.com/x.jpg") for n in range(items_service.MAX_REPORTED_ERRORS + 500)]

        with pytest.raises(CommandError) as error:
            run(dataset.name, write_jsonl(tmp_path / "rows.jsonl", rows))

        lines = str(error.value).splitlines()
        assert lines[0].endswith("has 1500 problems.") and lines[-1] == "  ... and 1480 more."

    def test_a_file_that_cannot_be_parsed_is_refused_with_its_line(self, dataset, tmp_path):
        path = tmp_path / "rows.jsonl"
        path.write_text(json.dumps(url_row(0)) + "\n{not json\n", encoding="utf-8")

        with pytest.raises(CommandError, match=r"row 1, : Not valid JSON"):
            run(dataset.name, path)
        assert not Item.objects.exists()

    def test_importing_the_same_file_again_is_refused_as_duplicates(self, dataset, tmp_path):
        path = write_jsonl(tmp_path / "rows.jsonl", ROWS)
        run(dataset.name, path)

        with pytest.raises(CommandError) as error:
            run(dataset.name, path)

        assert "  row 0, reference_id: 'image_1' is already used in this dataset." in str(error.value).splitlines()
        assert "has 3 problems" in str(error.value)
        assert Item.objects.filter(dataset=dataset).count() == 3

    def test_it_refuses_an_unknown_dataset(self, dataset, tmp_path):
        with pytest.raises(CommandError, match="No dataset has the id or the name 'Furniture'"):
            run("Furniture", write_jsonl(tmp_path / "rows.jsonl", ROWS))

    def test_a_number_that_is_one_datasets_id_and_anothers_name_is_ambiguous(self, dataset, tmp_path):
        DatasetFactory(name=str(dataset.id))

        with pytest.raises(CommandError, match="is the id of one dataset and the name of another"):
            run(dataset.id, write_jsonl(tmp_path / "rows.jsonl", ROWS))

    def test_it_refuses_a_scene_dataset_before_reading_the_file(self, tmp_path):
        scenes = DatasetFactory(name="Street scenes", kind=Dataset.Kind.SCENES)

        with pytest.raises(CommandError, match=f"Street scenes is a scene dataset.*/api/v1/datasets/{scenes.id}/scenes/"):
            run(scenes.name, tmp_path / "missing.jsonl")

    def test_it_refuses_a_file_it_cannot_read(self, dataset, tmp_path):
        with pytest.raises(CommandError, match=r"Cannot read .*missing.jsonl: No such file or directory\."):
            run(dataset.name, tmp_path / "missing.jsonl")

    def test_it_asks_for_the_format_when_the_name_does_not_tell(self, dataset, tmp_path):
        with pytest.raises(CommandError, match="pass --format"):
            run(dataset.name, tmp_path / "rows.txt")

    def test_a_refused_import_exits_with_status_1_from_the_command_line(self, dataset, tmp_path, capsys, monkeypatch):
        path = write_jsonl(tmp_path / "rows.jsonl", [url_row(0, image_url="ftp://images.example.com/0.jpg")])
        # run_from_argv closes every connection when it ends, the test's own included.
        monkeypatch.setattr(base_command.connections, "close_all", lambda: None)

        with pytest.raises(SystemExit) as exit_:
            ManagementUtility(["manage.py", "import_items", dataset.name, path]).execute()

        assert exit_.value.code == 1
        assert "row 0, image_url: Only http and https URLs are accepted." in capsys.readouterr().err
        assert not Item.objects.exists()


@pytest.mark.django_db
class TestItemsImport:
    def test_progress_is_reported_after_each_stored_chunk(self, dataset, monkeypatch):
        monkeypatch.setattr(items_service, "INSERT_CHUNK", 2)
        reported = []

        items_import(dataset=dataset, rows=[url_row(n) for n in range(5)], progress=reported.append)

        assert reported == [2, 4, 5]
        assert Task.objects.filter(dataset=dataset).count() == 5

    def test_the_number_of_queries_does_not_grow_with_the_rows(self, dataset):
        def queries_for(rows) -> list[str]:
            with CaptureQueriesContext(connection) as queries:
                items_import(dataset=dataset, rows=rows)
            return [query["sql"].split()[0] for query in queries]

        few, many = queries_for([url_row(n) for n in range(5)]), queries_for([url_row(n) for n in range(5, 65)])

        # reference_ids taken among items, then among scenes; then, in one transaction, one INSERT
        # of the items (on SQLite, whose limit is 999 parameters, 999 // the item's 13 columns = 76
        # rows a statement) and one
        # INSERT ... SELECT of their tasks, and the savepoint/commit statements around them.
        assert few == many
        assert [sql for sql in few if sql in ("SELECT", "INSERT")] == ["SELECT", "SELECT", "INSERT", "INSERT"]

    @pytest.mark.parametrize("stored", [1, 8], ids=["dataset smaller than the batch", "dataset bigger than the batch"])
    def test_a_big_batch_reports_each_reference_id_already_used_by_an_item_or_a_scene(self, dataset, monkeypatch, stored):
        # Batches over REFERENCE_ID_CHUNK read a smaller dataset's reference_ids whole, and look
        # the batch's up chunk by chunk in a bigger one: both must find the same.
        monkeypatch.setattr(items_service, "REFERENCE_ID_CHUNK", 2)
        items_import(dataset=dataset, rows=[url_row(n) for n in range(stored)])
        SceneFactory(dataset=dataset, reference_id="scene_1")
        rows = [url_row(0), url_row(100), {**url_row(101), "reference_id": "scene_1"}, url_row(102), url_row(103)]

        with pytest.raises(BatchInvalid) as error:
            items_import(dataset=dataset, rows=rows)

        assert [(row.index, row.message) for row in error.value.rows] == [
            (0, "'image_0' is already used in this dataset."),
            (2, "'scene_1' is already used in this dataset."),
        ]
        assert Item.objects.filter(dataset=dataset).count() == stored

    def test_a_scene_dataset_refuses_items(self):
        with pytest.raises(ValidationError, match="A scene dataset holds scenes"):
            items_import(dataset=DatasetFactory(kind=Dataset.Kind.SCENES), rows=[url_row(0)])


def row_errors(dataset, row) -> list[tuple]:
    with pytest.raises(BatchInvalid) as error:
        items_import(dataset=dataset, rows=[row])
    return [(found.index, found.field, found.message) for found in error.value.rows]


@pytest.mark.django_db
class TestRowChecks:
    """The per-row checks keep full_clean's exact rules and messages (they run the same field checks
    without full_clean's walk over every field)."""

    @pytest.mark.parametrize(
        ("image_url", "messages"),
        [
            ("ftp://images.example.com/1.jpg", ["Only http and https URLs are accepted."]),
            ("file:///etc/passwd", ["Enter a valid URL.", "Only http and https URLs are accepted."]),
            ("images.example.com/1.jpg", ["Enter a valid URL.", "Only http and https URLs are accepted."]),
            ("https://images.example.com/a b.jpg", ["Enter a valid URL.", "Only http and https URLs are accepted."]),
            ("https://images.example.com/1.jpg\n", ["Enter a valid URL.", "Only http and https URLs are accepted."]),
            ("https://[::1/1.jpg", ["Enter a valid URL.", "Only http and https URLs are accepted."]),
            ("https://" + "a" * 250 + ".example.com/", ["Enter a valid URL.", "Only http and https URLs are accepted."]),
            ("https://images.example.com/" + "x" * 1974, ["Ensure this value has at most 2000 characters (it has 2001)."]),
            (
                "https://images.example.com/" + "x" * 2030,
                ["Enter a valid URL.", "Only http and https URLs are accepted.", "Ensure this value has at most 2000 characters (it has 2057)."],
            ),
            (12, ["Enter a valid URL.", "Only http and https URLs are accepted."]),
        ],
    )
    def test_a_bad_image_url_gets_every_message_of_its_field(self, dataset, image_url, messages):
        assert row_errors(dataset, url_row(0, image_url=image_url)) == [(0, "image_url", message) for message in messages]

    @pytest.mark.parametrize(
        ("metadata", "message"),
        [
            ({"score": float("inf")}, "metadata contains NaN or Infinity (at metadata['score']); use null or a finite number."),
            # full_clean's own wording: Field.run_validators swaps the message of a validator's
            # ValidationError whose code ("invalid") is one of the field's error_messages.
            (["front"], "Value must be valid JSON."),
            ("front", "Value must be valid JSON."),
            ({"tags": {"a", "b"}}, "Value must be valid JSON."),
        ],
    )
    def test_bad_metadata_gets_the_message_of_its_field(self, dataset, metadata, message):
        assert row_errors(dataset, url_row(0, metadata=metadata)) == [(0, "metadata", message)]

    @pytest.mark.parametrize(
        ("reference_id", "message"),
        [
            ("x" * 256, "Ensure this value has at most 255 characters (it has 256)."),
            ("", "This field cannot be blank."),
            (None, "This field cannot be null."),
            (" \t", "reference_id cannot be empty."),
        ],
    )
    def test_a_bad_reference_id_gets_the_message_of_its_field(self, dataset, reference_id, message):
        row = {"reference_id": reference_id, "image_url": "https://images.example.com/1.jpg"}
        assert row_errors(dataset, row) == [(0, "reference_id", message)]

    def test_a_number_as_reference_id_is_stored_as_text(self, dataset):
        items_import(dataset=dataset, rows=[{"reference_id": 42, "image_url": "https://images.example.com/42.jpg"}])
        assert Item.objects.get(dataset=dataset).reference_id == "42"

    def test_the_shortcut_checks_are_on_for_the_fields_a_big_import_checks(self):
        for model, name in [(Item, "image_url"), (Item, "metadata"), (Scene, "video_url"), (Scene, "metadata")]:
            assert _sufficient_check(model._meta.get_field(name)) is not None, (model, name)
        assert _sufficient_check(Item._meta.get_field("reference_id")) is None

    def test_a_validator_added_to_a_url_field_turns_its_shortcut_off(self):
        def no_example_com(value):
            if "example.com" in value:
                raise ValidationError("No example.com.")

        plain = models.URLField(max_length=2000, blank=True, validators=[http_url_validator])
        stricter = models.URLField(max_length=2000, blank=True, validators=[http_url_validator, no_example_com])
        without_ours = models.URLField(max_length=2000, blank=True)
        assert _sufficient_check(plain) is not None
        assert _sufficient_check(stricter) is None
        assert _sufficient_check(without_ours) is None

    def test_a_json_field_with_another_validator_or_no_blank_gets_no_shortcut(self):
        assert _sufficient_check(models.JSONField(default=dict, blank=True, validators=[validate_metadata])) is not None
        assert _sufficient_check(models.JSONField(default=dict, validators=[validate_metadata])) is None
        assert _sufficient_check(models.JSONField(default=dict, blank=True)) is None


CHECKED = ["reference_id", "image_url", "metadata"]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=8,
)
hosts = st.one_of(
    st.from_regex(r"\A[a-z0-9-]{1,12}(\.[a-z0-9-]{1,12}){0,3}\.[a-z-]{1,6}\.?\Z"),
    st.sampled_from(["localhost", "127.0.0.1", "[::1]", "[::1", "[fe80::1%25eth0]", "bücher.de", "xn--bcher-kva.de", "-a.com", "a-.com"]),
    st.text(max_size=10),
)
urls = st.one_of(
    st.builds(
        lambda scheme, userinfo, host, port, path: f"{scheme}://{userinfo}{host}{port}{path}",
        st.sampled_from(["http", "https", "HTTPS", "ftp", "ftps", "file", "javascript", ""]),
        st.sampled_from(["", "user@", "user:pass@", "a b@"]),
        hosts,
        st.sampled_from(["", ":80", ":99999", ":", ":x"]),
        st.one_of(st.just(""), st.text(max_size=12).map(lambda text: "/" + text), st.sampled_from(["/a?b#c", "?q", "#f", "/a\tb"])),
    ),
    st.builds(lambda n: "https://images.example.com/" + "x" * n, st.integers(1960, 2040)),
    st.text(max_size=20),
    st.integers(),
)


def full_clean_result(values: dict):
    """What the model's own full_clean says about these values: the reference the checks must match."""
    item = Item(dataset_id=1, **values)
    excluded = [field.name for field in Item._meta.fields if field.name not in CHECKED]
    try:
        item.full_clean(exclude=excluded, validate_unique=False, validate_constraints=False)
    except ValidationError as error:
        return error.message_dict, None
    if isinstance(item.reference_id, str) and not item.reference_id.strip():
        return {"reference_id": ["reference_id cannot be empty."]}, None
    try:
        validate_reference_id(item.reference_id)  # a name, checked after the model's own checks
    except ValidationError as error:
        return {"reference_id": error.messages}, None
    return {}, (item.reference_id, item.image_url, item.metadata)


def row_check_result(values: dict):
    item = Item(dataset_id=1, **values)
    errors: dict[str, list[str]] = {}
    for error in _field_errors(item, CHECKED, index=0, field_prefix=""):
        errors.setdefault(error.field, []).append(error.message)
    return errors, (None if errors else (item.reference_id, item.image_url, item.metadata))


@settings(max_examples=400, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    reference_id=st.one_of(st.text(max_size=8), st.just("x" * 256), st.integers(), st.none()),
    image_url=urls,
    metadata=st.one_of(st.dictionaries(st.text(max_size=5), json_values, max_size=4), json_values),
)
def test_the_row_checks_say_exactly_what_full_clean_says(reference_id, image_url, metadata):
    values = {"reference_id": reference_id, "image_url": image_url, "metadata": metadata}
    assert row_check_result(values) == full_clean_result(values)
