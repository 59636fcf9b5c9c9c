"""The static files storage of production settings (STORAGES["staticfiles"] in config/settings.py)."""

from whitenoise.storage import CompressedManifestStaticFilesStorage as WhiteNoiseManifestStorage


class CompressedManifestStaticFilesStorage(WhiteNoiseManifestStorage):
    """WhiteNoise's storage (hashed names, gzip copies), with `import ... from "./x.js"` between ES
    modules rewritten to the hashed names too (Django leaves it off by default): a page then never
    mixes a new module with an old one that a cache kept under the same name."""

    support_js_module_import_aggregation = True
