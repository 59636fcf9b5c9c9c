"""Taxonomies and their labels, with Nucleus's semantics.

A taxonomy is a named set of category labels in one dataset; an item or scene gets at most one
annotation per taxonomy. Nucleus keeps a taxonomy's labels append-only, so renaming or removing a
label here is allowed but means the taxonomy must be rebuilt there: `nucleus_labels` records what
Nucleus was last given (and `nucleus_taxonomy_name` under which name), and everything about the
rebuild is derived from comparing them with the labels and the name we have now.
"""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q

from taxonomies.text import validate_name_text

# Nucleus puts taxonomy names into URL paths without encoding them (DELETE dataset/{id}/taxonomy/{name}).
url_safe_name_validator = RegexValidator(
    regex=r"^[^/?#]+$",
    message="Must not contain '/', '?' or '#': Nucleus puts it in URLs without encoding it.",
)
# A multi-label taxonomy goes to Nucleus as one True/False taxonomy per label, named
# "<taxonomy_name>:<label>"; keeping ':' out of taxonomy names means no name can collide with those.
MULTI_LABEL_SEPARATOR = ":"
taxonomy_name_validator = RegexValidator(
    regex=r"^[^/?#:]+$",
    message="Must not contain '/', '?' or '#' (Nucleus puts it in URLs without encoding it) "
    "or ':' (it names the True/False taxonomies of multi-label taxonomies on Nucleus).",
)
# The labeling page's keys (KeyboardEvent.key values) by what they do. The page reads this map from
# its page data, so validation and the page cannot disagree about which keys are taken.
PAGE_KEYS: dict[str, tuple[str, ...]] = {
    "pick": tuple("123456789"),  # the n-th label of the current taxonomy
    "help": ("?",),
    "back": ("z", "Z", "Backspace"),
    "submit": ("Enter",),
    "skip": ("s", "S"),
    "leave": ("Escape",),  # back to the current item; closes the help and the metadata editor
    "next_taxonomy": ("Tab", "ArrowDown"),  # Shift+Tab: the previous one
    "previous_taxonomy": ("ArrowUp",),
    "clear": ("Delete",),
    "metadata": ("M",),  # Shift+M
    "zoom_in": ("+", "="),
    "zoom_out": ("-", "_"),
    "fit": ("0",),
    "previous_frame": ("ArrowLeft",),
    "next_frame": ("ArrowRight",),
    "play": (" ",),
}
# A label cannot take a key the page keeps for itself as its hotkey.
RESERVED_HOTKEYS = frozenset(key for keys in PAGE_KEYS.values() for key in keys if len(key) == 1)


def validate_hotkey(value: str) -> None:
    if len(value) != 1 or not value.isprintable() or value.isspace():
        raise ValidationError("A hotkey is one printable character, such as 'a'.")
    if value.lower() != value:
        raise ValidationError("Hotkeys are lower-case letters or symbols ('a', not 'A').")
    if value in RESERVED_HOTKEYS:
        taken = " ".join(sorted(key for key in RESERVED_HOTKEYS if key == key.lower() and not key.isspace()))
        raise ValidationError(f"'{value}' is reserved by the labeling page ({taken}): pick another key.")


class TaxonomyQuerySet(models.QuerySet):
    def get_by_natural_key(self, dataset_id: int, taxonomy_name: str) -> "Taxonomy":
        return self.get(dataset_id=dataset_id, taxonomy_name=taxonomy_name)


class Taxonomy(models.Model):
    class Type(models.TextChoices):
        CATEGORY = "category", "Category"

    class AppliesTo(models.TextChoices):
        ITEMS = "items", "Items"
        SCENES = "scenes", "Scenes"
        BOTH = "both", "Items and scenes"

    dataset = models.ForeignKey(
        settings.TAXONOMIES_DATASET_MODEL, on_delete=models.CASCADE, related_name="taxonomies"
    )
    taxonomy_name = models.CharField(
        max_length=200,
        validators=[taxonomy_name_validator, validate_name_text],
        help_text="The name Nucleus knows the taxonomy by; unique in the dataset, without / ? # :.",
    )
    type = models.CharField(max_length=20, choices=Type.choices, default=Type.CATEGORY)
    multi_label = models.BooleanField(
        default=False,
        help_text="Several labels may be chosen at once. Sent to Nucleus as one True/False "
        "taxonomy per label. Cannot be changed once the taxonomy exists.",
    )
    applies_to = models.CharField(max_length=10, choices=AppliesTo.choices, default=AppliesTo.ITEMS)
    required = models.BooleanField(
        default=True, help_text="A labeler cannot submit an item or scene without answering it."
    )
    position = models.PositiveIntegerField(
        default=0, help_text="Order of the taxonomy on the labeling page (smallest first)."
    )
    nucleus_labels = models.JSONField(
        null=True,
        blank=True,
        editable=False,
        help_text="The labels Nucleus was last given for this taxonomy, in order; empty if it was "
        "never created there.",
    )
    nucleus_taxonomy_name = models.CharField(
        max_length=200,
        blank=True,
        editable=False,
        help_text="The taxonomy_name Nucleus has this taxonomy under (recorded with nucleus_labels); a "
        "different taxonomy_name now means it was renamed here and must be rebuilt there.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TaxonomyQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "taxonomies"
        ordering = ["position", "id"]
        constraints = [
            # Target of labeling's composite keys, which prove that an annotation's taxonomy belongs
            # to the annotation's dataset.
            models.UniqueConstraint(fields=["id", "dataset"], name="taxonomies_taxonomy_id_dataset_key"),
            models.UniqueConstraint(
                fields=["dataset", "taxonomy_name"],
                name="taxonomies_taxonomy_name_unique_in_dataset",
                violation_error_message="This dataset already has a taxonomy with this taxonomy_name.",
            ),
            models.CheckConstraint(
                condition=~Q(taxonomy_name="")
                & ~Q(taxonomy_name__contains="/")
                & ~Q(taxonomy_name__contains="?")
                & ~Q(taxonomy_name__contains="#")
                & ~Q(taxonomy_name__contains=":"),
                name="taxonomies_taxonomy_name_url_safe",
                violation_error_message="taxonomy_name must be non-empty and free of '/', '?', '#' and ':'.",
            ),
            models.CheckConstraint(
                condition=Q(type="category"),
                name="taxonomies_taxonomy_type_category",
                violation_error_message="Only category taxonomies are supported.",
            ),
            models.CheckConstraint(
                condition=Q(applies_to__in=["items", "scenes", "both"]),
                name="taxonomies_taxonomy_applies_to_valid",
            ),
        ]

    def __str__(self) -> str:
        return self.taxonomy_name

    def natural_key(self) -> tuple[int, str]:
        return (self.dataset_id, self.taxonomy_name)

    def applies_to_items(self) -> bool:
        return self.applies_to in (self.AppliesTo.ITEMS, self.AppliesTo.BOTH)

    def applies_to_scenes(self) -> bool:
        return self.applies_to in (self.AppliesTo.SCENES, self.AppliesTo.BOTH)

    def label_names(self) -> list[str]:
        """Current label names in display order (uses a prefetched `labels` when there is one)."""
        return [label.name for label in self.labels.all()]

    def nucleus_labels_removed(self, current: list[str] | None = None) -> list[str]:
        """Labels Nucleus has that we no longer have (removed or renamed since the last sync).

        Nucleus keeps labels append-only, so any of these means the taxonomy must be deleted and
        re-created there, and every finished annotation of it uploaded again.
        """
        if self.nucleus_labels is None:
            return []
        current_names = set(self.label_names() if current is None else current)
        return [name for name in self.nucleus_labels if name not in current_names]

    def nucleus_labels_added(self, current: list[str] | None = None) -> list[str]:
        """Labels we have that Nucleus has not been given yet (`add_taxonomy(..., update=True)`)."""
        known = set(self.nucleus_labels or [])
        return [name for name in (self.label_names() if current is None else current) if name not in known]

    def nucleus_renamed_from(self) -> str:
        """The taxonomy_name Nucleus has it under, when it was renamed here since ("" otherwise).

        Nucleus keeps the annotations under the old name: the old taxonomy must be deleted there,
        the new one created and every finished annotation uploaded again."""
        if self.nucleus_labels is None or self.nucleus_taxonomy_name in ("", self.taxonomy_name):
            return ""
        return self.nucleus_taxonomy_name

    def needs_nucleus_rebuild(self) -> bool:
        return bool(self.nucleus_labels_removed()) or bool(self.nucleus_renamed_from())


class Label(models.Model):
    taxonomy = models.ForeignKey(Taxonomy, on_delete=models.CASCADE, related_name="labels")
    name = models.CharField(
        max_length=200,
        validators=[validate_name_text],
        help_text="The label as Nucleus stores it, e.g. 'shirt'. Unique in the taxonomy.",
    )
    hotkey = models.CharField(
        max_length=1,
        blank=True,
        validators=[validate_hotkey],
        help_text="Optional key that picks this label on the labeling page (besides 1-9).",
    )
    position = models.PositiveIntegerField(default=0, help_text="Display order (smallest first).")

    class Meta:
        ordering = ["position", "id"]
        constraints = [
            # Target of labeling's composite keys, which prove that a chosen label belongs to the
            # annotation's taxonomy.
            models.UniqueConstraint(fields=["id", "taxonomy"], name="taxonomies_label_id_taxonomy_key"),
            models.UniqueConstraint(
                fields=["taxonomy", "name"],
                name="taxonomies_label_name_unique_in_taxonomy",
                violation_error_message="This taxonomy already has this label.",
            ),
            models.UniqueConstraint(
                fields=["taxonomy", "hotkey"],
                condition=~Q(hotkey=""),
                name="taxonomies_label_hotkey_unique_in_taxonomy",
                violation_error_message="Another label of this taxonomy already uses this hotkey.",
            ),
            models.CheckConstraint(
                condition=Q(name__regex=r"\S"),
                name="taxonomies_label_name_not_blank",
                violation_error_message="A label cannot be empty.",
            ),
            models.CheckConstraint(
                condition=Q(hotkey__regex=r"^.?$"),
                name="taxonomies_label_hotkey_one_character",
                violation_error_message="A hotkey is a single character.",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if self.name != self.name.strip():
            raise ValidationError({"name": "A label cannot start or end with spaces."})
        # The admin's add page checks its label rows against a taxonomy not saved yet (set on the row).
        taxonomy = self.taxonomy if self.taxonomy_id or Label.taxonomy.is_cached(self) else None
        if taxonomy is not None and self.hotkey:
            # The labeling page shows every taxonomy of the dataset at once, so a hotkey must pick
            # one label in the whole dataset. (Within one taxonomy the database enforces it too.)
            taken = (
                Label.objects.filter(taxonomy__dataset_id=taxonomy.dataset_id, hotkey=self.hotkey)
                .exclude(taxonomy_id=taxonomy.pk or 0)
                .select_related("taxonomy")
                .first()
            )
            if taken is not None:
                raise ValidationError(
                    {"hotkey": f"“{taken.taxonomy.taxonomy_name}” already uses '{self.hotkey}' for “{taken.name}”."}
                )
        if taxonomy is not None and taxonomy.multi_label:
            # Each label of a multi-label taxonomy becomes a Nucleus taxonomy name of its own.
            try:
                url_safe_name_validator(self.name)
            except ValidationError as error:
                raise ValidationError({"name": error.messages}) from None
