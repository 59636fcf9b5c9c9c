"""The audit log: who changed which annotation and taxonomy of a dataset, and from what to what.

The app imports neither labeling nor taxonomies, so both can write to it (taxonomies must never
import labeling); it reaches the dataset model through TAXONOMIES_DATASET_MODEL, as taxonomies does.
"""

import json

from django.conf import settings
from django.db import models


class AuditEvent(models.Model):
    class Action(models.TextChoices):
        ANNOTATION_CREATE = "annotation.create", "annotation finished"
        ANNOTATION_CHANGE = "annotation.change", "finished annotation changed"
        ANNOTATION_RELABEL = "annotation.relabel", "annotations relabelled (label removed)"
        ANNOTATION_ASK_NEW_CLASSES = "annotation.ask_new_classes", "sent back for the classes added since"
        TAXONOMY_CREATE = "taxonomy.create", "taxonomy created"
        TAXONOMY_UPDATE = "taxonomy.update", "taxonomy changed"
        TAXONOMY_DELETE = "taxonomy.delete", "taxonomy deleted"
        LABEL_ADD = "label.add", "labels added"
        LABEL_UPDATE = "label.update", "label changed"
        LABEL_REORDER = "label.reorder", "labels reordered"
        LABEL_DELETE = "label.delete", "label removed"

    dataset = models.ForeignKey(settings.TAXONOMIES_DATASET_MODEL, on_delete=models.CASCADE, related_name="audit_events")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="Who made the change; empty for a command or task run without a signed-in user.",
    )
    actor_username = models.CharField(max_length=150, blank=True, help_text="The actor's username then (kept if the user is deleted).")
    action = models.CharField(max_length=32, choices=Action.choices)
    target_type = models.CharField(max_length=20, help_text="annotation, taxonomy or label.")
    target_id = models.BigIntegerField(null=True, blank=True, help_text="The changed row's id (may be deleted since).")
    reference_id = models.CharField(max_length=255, blank=True, help_text="The annotated item's or scene's reference_id.")
    taxonomy_name = models.CharField(max_length=255, blank=True)
    before = models.JSONField(null=True, blank=True, help_text="The state before the change; empty for a creation.")
    after = models.JSONField(null=True, blank=True, help_text="The state after the change; empty for a deletion.")
    created_at = models.DateTimeField(db_index=False)

    class Meta:
        ordering = ["-id"]
        indexes = [
            # The audit page: "a dataset's events, newest first", a page after ?after=<id>.
            models.Index(fields=["dataset", "-id"], name="audit_event_dataset_newest"),
            # The page filtered by actor (by username: audit_event_page's `actor`), by reference_id, by action.
            models.Index(fields=["dataset", "actor_username", "-id"], name="audit_event_dataset_actor_name"),
            models.Index(fields=["dataset", "reference_id", "-id"], name="audit_event_dataset_reference"),
            models.Index(fields=["dataset", "action", "-id"], name="audit_event_dataset_action"),
        ]

    def __str__(self) -> str:
        return f"{self.actor_username or 'system'} {self.action} {self.taxonomy_name} {self.reference_id}".strip()

    def before_text(self) -> str:
        return "" if self.before is None else json.dumps(self.before, ensure_ascii=False, sort_keys=True)

    def after_text(self) -> str:
        return "" if self.after is None else json.dumps(self.after, ensure_ascii=False, sort_keys=True)
