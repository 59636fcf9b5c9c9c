"""DRF's JSON parser, with one more kind of bad body answered as a 400."""

from rest_framework import parsers
from rest_framework.exceptions import ParseError


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            # json.loads gives up on nesting deeper than Python's recursion limit with an error that
            # DRF does not catch (it only turns ValueError into a parse error).
            raise ParseError("JSON parse error - the body is nested too deeply.") from None
