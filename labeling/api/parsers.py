"""DRF's parsers, holding every body to the rules of the edge before any view reads it.
(DRF reads JSON and form bodies through `request.body`, and Django's multipart parser counts the
fields: over DATA_UPLOAD_MAX_MEMORY_SIZE both raise RequestDataTooBig, a 413 in labeling/api/errors.py.)

- No key or string of a body, at any depth, may hold text that cannot be stored (taxonomies.text):
  a 400 naming each row and field.
- A multipart body carries files only in the fields its view reads as files (`upload_fields`):
  elsewhere a file would reach the services as an object where text belongs.
"""

from rest_framework import parsers
from rest_framework.exceptions import ParseError

from labeling.errors import BatchInvalid, RowError
from labeling.validators import unstorable_text_errors


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            # json.loads gives up on nesting deeper than Python's recursion limit with an error that
            # DRF does not catch (it only turns ValueError into a parse error).
            raise ParseError("JSON parse error - the body is nested too deeply.") from None
        return _storable(data)


class FormParser(parsers.FormParser):
    def parse(self, stream, media_type=None, parser_context=None):
        return _storable(super().parse(stream, media_type, parser_context))


class MultiPartParser(parsers.MultiPartParser):
    def parse(self, stream, media_type=None, parser_context=None):
        parsed = super().parse(stream, media_type, parser_context)
        upload_fields = getattr((parser_context or {}).get("view"), "upload_fields", frozenset())
        unexpected = sorted(set(parsed.files) - upload_fields)
        if unexpected:
            raise BatchInvalid([RowError(index=None, field=name, message="Expected text here, not a file.") for name in unexpected])
        _storable(parsed.data)
        return parsed


def _storable(data):
    """`data`, or BatchInvalid naming every key and string of it that cannot be stored. A form's
    fields are walked with all their values (a QueryDict's items() shows only the last)."""
    walked = {key: values if len(values) > 1 else values[0] for key, values in data.lists()} if hasattr(data, "lists") else data
    errors = unstorable_text_errors(walked)
    if errors:
        raise BatchInvalid(errors)
    return data
