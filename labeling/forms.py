"""Form fields of the admin that hold typed text to the rule of the edge (taxonomies.text)."""

from django import forms
from django.forms.fields import InvalidJSONInput

from taxonomies.text import unstorable_paths, validate_name_text


class NameFormField(forms.CharField):
    """A name (a dataset's, a taxonomy's, a label's): checked as typed, before the form trims the
    spaces around it, so that a control character at an end is refused rather than dropped. The
    same validator as the API's NameField and the services."""

    def to_python(self, value):
        validate_name_text(value)
        return super().to_python(value)


class MetadataFormField(forms.JSONField):
    """JSON whose text cannot be stored is shown again as typed: Django's field would show the
    parsed value, and a lone surrogate written into the page makes it a 500. The model's
    validate_metadata says what is wrong."""

    def bound_data(self, data, initial):
        value = super().bound_data(data, initial)
        if not isinstance(value, InvalidJSONInput) and next(unstorable_paths(value), None) is not None:
            return InvalidJSONInput(data)
        return value
