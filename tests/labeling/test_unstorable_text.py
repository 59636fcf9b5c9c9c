"""Text that cannot be stored the same way everywhere, away from the API: files of rows, the
import_items command, the admin's forms, the pages' query strings, and find_unstorable_text, which
reports what was stored before the edge checked it."""

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import DataError, connection, transaction
from django.urls import reverse

from labeling.errors import BatchInvalid
from labeling.importing import rows_from_bytes
from labeling.models import Dataset, Item
from taxonomies.models import Label, Taxonomy
from tests.factories import ItemFactory
from tests.labeling.test_admin import taxonomy_form

pytestmark = pytest.mark.django_db

ON_SQLITE = connection.vendor == "sqlite"


class TestFilesOfRows:
    def test_a_jsonl_line_with_a_lone_surrogate_is_named_by_its_row_and_field(self):
        lines = b'{"reference_id": "a", "image_url": "https://a.test/a.jpg"}\n{"reference_id": "b", "image_url": "https://a.test/b.jpg", "metadata": {"tags": ["ok", "\\udc00"]}}\n'

        with pytest.raises(BatchInvalid) as refused:
            rows_from_bytes(lines, file_format="jsonl")

        assert [row.as_dict() for row in refused.value.rows] == [
            {"index": 1, "field": "metadata.tags[1]", "message": "This text contains U+DC00, a lone surrogate (half of a UTF-16 pair), which is not a character."}
        ]

    def test_a_nul_in_a_csv_cell_is_named_by_its_row_and_column(self):
        content = b"reference_id,image_url,color\na,https://a.test/a.jpg,red\nb,https://a.test/b.jpg,bl\x00ue\n"

        with pytest.raises(BatchInvalid) as refused:
            rows_from_bytes(content, file_format="csv")

        assert [(row.index, row.field) for row in refused.value.rows] == [(1, "metadata.color")]

    def test_import_items_names_the_row_and_field_and_imports_nothing(self, dataset, tmp_path):
        path = tmp_path / "rows.csv"
        path.write_bytes(b"reference_id,image_url\na,https://a.test/a.jpg\nb\x00,https://a.test/b.jpg\n")

        with pytest.raises(CommandError) as refused:
            call_command("import_items", str(dataset.id), str(path), stdout=StringIO(), stderr=StringIO())

        assert "row 1, reference_id: This text contains a NUL character (U+0000), which cannot be stored." in str(refused.value)
        assert not Item.objects.exists()


    def test_import_items_refuses_a_dataset_argument_that_is_not_utf8(self, dataset, tmp_path):
        path = tmp_path / "rows.csv"
        path.write_bytes(b"reference_id,image_url\na,https://a.test/a.jpg\n")

        # Python reads an argument that is not UTF-8 with lone surrogates (surrogateescape).
        with pytest.raises(CommandError, match="The dataset argument contains U\\+DCFF"):
            call_command("import_items", b"Clothing\xff".decode("utf-8", "surrogateescape"), str(path), stdout=StringIO(), stderr=StringIO())


class TestForms:
    @pytest.fixture
    def admin_client(self, client, superuser):
        client.force_login(superuser)
        return client

    def test_a_dataset_name_with_a_control_character_is_a_form_error(self, admin_client):
        response = admin_client.post(reverse("admin:labeling_dataset_add"), {"name": "Clothing\x85", "kind": "images", "nucleus_dataset_id": ""})

        assert response.status_code == 200
        assert "U+0085" in response.content.decode()
        assert not Dataset.objects.exists()

    def test_a_taxonomy_and_a_label_with_control_characters_are_form_errors(self, admin_client, dataset):
        response = admin_client.post(
            reverse("admin:taxonomies_taxonomy_add"),
            taxonomy_form(
                {"dataset": str(dataset.id), "taxonomy_name": "col\x07or", "type": "category", "applies_to": "items", "position": "0"},
                [{"name": "re\x1bd", "hotkey": "", "position": ""}],
            ),
        )

        assert response.status_code == 200
        assert "U+0007" in response.content.decode()
        assert not Taxonomy.objects.exists()

    def test_metadata_typed_into_the_admin_is_checked_at_any_depth(self, admin_client, dataset):
        item = ItemFactory(dataset=dataset, reference_id="a")

        response = admin_client.post(reverse("admin:labeling_item_change", args=[item.pk]), {"metadata": '{"a": {"b": "\\ud800"}}'})

        assert response.status_code == 200
        assert "metadata.a.b: This text contains U+D800" in response.content.decode()
        item.refresh_from_db()
        assert item.metadata == {}

    @pytest.mark.parametrize("path", ["/", "/admin/labeling/item/"])
    def test_a_nul_in_a_pages_query_is_a_400_page(self, admin_client, path):
        response = admin_client.get(path + "?q=%00")

        assert response.status_code == 400
        assert response["Content-Type"].startswith("text/html")
        assert "This request could not be read" in response.content.decode()  # the site's page, with a way back


def find(*args) -> tuple[int, list[str]]:
    out = StringIO()
    try:
        call_command("find_unstorable_text", *args, stdout=out)
    except CommandError:
        return 1, out.getvalue().splitlines()
    return 0, out.getvalue().splitlines()


def plant(sql: str, params: list) -> None:
    """Write past every check, as rows stored before them were."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


class TestFindUnstorableText:
    def test_a_clean_database_passes(self, dataset, clothing_type):
        ItemFactory(dataset=dataset, reference_id="a", metadata={"emoji": "\U0001f600", "escaped": "\\u0000"})

        assert find() == (0, ["No stored text breaks the rules."])

    def test_names_with_control_characters_and_dot_segments_are_found_on_both_databases(self, dataset, clothing_type):
        shirt = clothing_type.labels.get(name="shirt")
        item = ItemFactory(dataset=dataset, reference_id="a")
        plant(f"UPDATE {Label._meta.db_table} SET name = %s WHERE id = %s", ["sh\x85irt", shirt.id])
        plant(f"UPDATE {Item._meta.db_table} SET reference_id = %s WHERE id = %s", ["..", item.id])

        status, lines = find()

        assert status == 1
        assert lines == [
            f"Item {item.id} reference_id: The reference_id '..' cannot round-trip through URLs.",
            f"Label {shirt.id} name: This name contains the control character U+0085, which a name cannot hold.",
        ]

    @pytest.mark.skipif(not ON_SQLITE, reason="PostgreSQL refuses NUL in text and lone surrogates in jsonb: it cannot hold such rows")
    def test_nul_and_lone_surrogates_that_sqlite_took_are_found(self, dataset, clothing_type):
        item = ItemFactory(dataset=dataset, reference_id="a")
        other = Dataset.objects.create(name="Other")
        elsewhere = ItemFactory(dataset=other, reference_id="b")
        # json.dumps writes the surrogate as "\ud800": how Django's JSONField stored one on SQLite.
        plant(f"UPDATE {Item._meta.db_table} SET metadata = %s, image_url = %s WHERE id = %s", [json.dumps({"camera": {"color": "\ud800"}}), "https://a.test/\x00", item.id])
        plant(f"UPDATE {Taxonomy._meta.db_table} SET taxonomy_name = %s WHERE id = %s", ["clothing\x00type", clothing_type.id])
        plant(f"UPDATE {Item._meta.db_table} SET metadata = %s WHERE id = %s", [json.dumps({"k\x00": 1}), elsewhere.id])

        status, lines = find("--dataset", str(dataset.id))

        assert status == 1
        assert lines == [
            f"Item {item.id} image_url: This text contains a NUL character (U+0000), which cannot be stored.",
            f"Item {item.id} metadata.camera.color: This text contains U+D800, a lone surrogate (half of a UTF-16 pair), which is not a character.",
            f"Taxonomy {clothing_type.id} taxonomy_name: This name contains a NUL character (U+0000), which cannot be stored.",
        ]
        assert f"Item {elsewhere.id} metadata.k\\u0000: This key contains a NUL character (U+0000), which cannot be stored." in find()[1]

    @pytest.mark.skipif(ON_SQLITE, reason="SQLite takes these rows (the test above)")
    def test_postgresql_refuses_to_hold_them_so_the_command_finds_none(self, dataset):
        item = ItemFactory(dataset=dataset, reference_id="a")
        with pytest.raises(DataError), transaction.atomic():
            plant(f"UPDATE {Item._meta.db_table} SET image_url = %s WHERE id = %s", ["https://a.test/\x00", item.id])

        assert find() == (0, ["No stored text breaks the rules."])
