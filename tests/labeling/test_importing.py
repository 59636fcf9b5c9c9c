"""Reading rows from JSON, JSON Lines and CSV files (labeling.importing)."""

import io

import pytest

from labeling.errors import BatchInvalid
from labeling.importing import format_from_name, rows_from_bytes, rows_from_file


def problems(data: bytes, file_format: str) -> list[tuple]:
    with pytest.raises(BatchInvalid) as error:
        rows_from_bytes(data, file_format=file_format)
    return [(row.index, row.field, row.message) for row in error.value.rows]


class TestFormatFromName:
    @pytest.mark.parametrize(
        ("name", "expected"),
        [("rows.json", "json"), ("rows.JSONL", "jsonl"), ("rows.ndjson", "jsonl"), ("a.b.csv", "csv"), ("rows.txt", None), ("rows", None)],
    )
    def test_it_reads_the_format_from_the_extension(self, name, expected):
        assert format_from_name(name) == expected


class TestJson:
    def test_a_json_list_is_read_whole(self):
        assert rows_from_bytes(b'[{"reference_id": "a"}, {"reference_id": "b"}]', file_format="json") == [
            {"reference_id": "a"},
            {"reference_id": "b"},
        ]

    def test_it_refuses_a_json_object(self):
        assert problems(b'{"reference_id": "a"}', "json") == [(None, "file", "A JSON file holds a list of rows.")]

    def test_it_refuses_text_that_is_not_json(self):
        [(index, field, message)] = problems(b"[{", "json")
        assert (index, field) == (None, "file") and message.startswith("Not valid JSON:")

    def test_it_refuses_nesting_deeper_than_python_can_parse_instead_of_crashing(self):
        assert problems(b"[" * 100_000, "json") == [(None, "file", "Not valid JSON: nested too deeply.")]

    def test_it_refuses_an_integer_too_long_to_convert_instead_of_crashing(self):
        [(index, field, message)] = problems(b"[" + b"1" * 5000 + b"]", "json")
        assert (index, field) == (None, "file") and "4300 digits" in message


class TestJsonLines:
    def test_each_line_is_a_row_and_blank_lines_are_skipped(self):
        data = b'{"reference_id": "a"}\r\n\n   \n{"reference_id": "b"}'
        assert rows_from_bytes(data, file_format="jsonl") == [{"reference_id": "a"}, {"reference_id": "b"}]

    def test_every_bad_line_is_reported_with_its_row_index(self):
        data = b'{"reference_id": "a"}\n{oops\n\n{"reference_id": "c"}\n[1,\n'
        assert [(index, field) for index, field, _ in problems(data, "jsonl")] == [(1, ""), (3, "")]

    def test_a_line_separator_inside_a_json_string_does_not_split_the_row(self):
        # U+2028 is legal unescaped in a JSON string; only \n, \r and \r\n end a JSON Lines row.
        data = '{"reference_id": "a", "metadata": {"note": "one\u2028two"}}\n'.encode()
        assert rows_from_bytes(data, file_format="jsonl") == [{"reference_id": "a", "metadata": {"note": "one\u2028two"}}]

    def test_a_byte_order_mark_is_ignored(self):
        assert rows_from_bytes('\ufeff{"reference_id": "a"}\n'.encode(), file_format="jsonl") == [{"reference_id": "a"}]

    def test_it_refuses_a_file_that_is_not_utf8(self):
        assert problems(b'{"reference_id": "caf\xe9"}\n', "jsonl") == [
            (None, "file", "The file is not UTF-8 text (invalid continuation byte).")
        ]

    def test_a_stream_is_read_and_left_open(self):
        stream = io.BytesIO(b'{"reference_id": "a"}\n{"reference_id": "b"}\n')
        assert len(rows_from_file(stream, file_format="jsonl")) == 2
        assert not stream.closed


class TestCsv:
    def test_other_columns_become_metadata_and_the_metadata_column_is_json(self):
        data = (
            "reference_id,image_url,camera,metadata,empty\r\n"
            'a,https://x.test/a.jpg,front,"{""score"": 0.5, ""nested"": {""k"": [1]}}",\r\n'
            "b,https://x.test/b.jpg,rear,,\r\n"
        ).encode()
        assert rows_from_bytes(data, file_format="csv") == [
            {"reference_id": "a", "image_url": "https://x.test/a.jpg", "metadata": {"camera": "front", "score": 0.5, "nested": {"k": [1]}}},
            {"reference_id": "b", "image_url": "https://x.test/b.jpg", "metadata": {"camera": "rear"}},
        ]

    def test_a_quoted_cell_may_hold_a_line_break(self):
        data = b'reference_id,image_url,note\na,https://x.test/a.jpg,"two\nlines"\n'
        assert rows_from_bytes(data, file_format="csv")[0]["metadata"] == {"note": "two\nlines"}

    def test_it_needs_a_reference_id_column(self):
        assert problems(b"id,image_url\na,https://x.test/a.jpg\n", "csv") == [
            (None, "file", "The CSV needs a header row with a reference_id column.")
        ]

    def test_every_bad_row_is_reported_with_its_index_and_field(self):
        data = b'reference_id,image_url,metadata\na,u,{bad\nb,u,[1]\nc,u,,extra\n'
        assert [(index, field) for index, field, _ in problems(data, "csv")] == [(0, "metadata"), (1, "metadata"), (2, "")]

    def test_it_refuses_a_cell_over_the_csv_size_limit_instead_of_crashing(self):
        data = b"reference_id,image_url\n" + b"a" * 200_000 + b",u\n"
        [(index, field, message)] = problems(data, "csv")
        assert (index, field) == (None, "file") and message.startswith("Not valid CSV (line")


def test_it_refuses_an_unknown_format():
    assert problems(b"", "xml") == [(None, "file", "Unknown format; use one of json, jsonl, csv.")]
