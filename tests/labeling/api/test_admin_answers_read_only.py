"""The Django admin cannot delete a finished answer: that would go around the services (no audit
event, nothing told to Nucleus, the task left done with no answer). Annotations are read-only there."""

import pytest
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent
from labeling.models import CategoryAnnotation, Task
from tests.labeling.api.support import answer

pytestmark = pytest.mark.django_db


@pytest.fixture
def finished(dataset, items, clothing_type, labeler):
    saved = answer(target=items[0], taxonomy=clothing_type, names=["shirt"], annotator=labeler)
    Task.objects.filter(item=items[0]).update(state=Task.State.DONE, done_by=labeler)
    return saved.annotation


def test_the_admin_cannot_delete_a_finished_answer_behind_the_services(superuser, finished):
    client = Client()
    client.force_login(superuser)
    events = AuditEvent.objects.count()

    response = client.post(reverse("admin:labeling_categoryannotation_delete", args=[finished.pk]), {"post": "yes"})

    # Either refused like add and change (403), or done through a service that audits it.
    assert response.status_code == 403 or AuditEvent.objects.count() > events
    assert CategoryAnnotation.objects.filter(pk=finished.pk).exists() or AuditEvent.objects.count() > events


def test_the_admin_delete_selected_action_cannot_delete_answers_behind_the_services(superuser, finished):
    client = Client()
    client.force_login(superuser)
    events = AuditEvent.objects.count()

    client.post(
        reverse("admin:labeling_categoryannotation_changelist"),
        {"action": "delete_selected", "_selected_action": [finished.pk], "post": "yes"},
    )

    assert CategoryAnnotation.objects.filter(pk=finished.pk).exists() or AuditEvent.objects.count() > events
