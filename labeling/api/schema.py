"""OpenAPI generation (drf-spectacular) with component names that stay unique.

Each view declares its own nested `InputSerializer`; named by class name alone they would all be
the component "Input", so a nested serializer is named after its view too ("DatasetListInput")."""

from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema


class AutoSchema(SpectacularAutoSchema):
    def get_serializer_name(self, serializer, direction) -> str:
        owner, _, name = type(serializer).__qualname__.rpartition(".")
        return f"{owner.removesuffix('Api')}{name}" if owner else name
