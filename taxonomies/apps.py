from django.apps import AppConfig


class TaxonomiesConfig(AppConfig):
    name = "taxonomies"
    default_auto_field = "django.db.models.BigAutoField"
