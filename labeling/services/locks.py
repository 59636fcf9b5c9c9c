"""The one order in which writes take row locks, so that no two of them wait on each other.

A write that locks more than one kind of row takes them in this order, each kind in id order: the
taxonomy's labels, the queue tasks, the answers. A submit and annotations/ lock their task, then its
answers (`task_submit`, `targets_claim_for_writing`), and storing a chosen label takes a key-share
lock on it, which the labels' lock below leaves free.
"""

from django.db.models import Q, QuerySet

from labeling.models import Task
from taxonomies.models import Label, Taxonomy


def taxonomy_labels_lock(*, taxonomy: Taxonomy) -> list[Label]:
    """Lock the taxonomy's labels, in id order, against a class added meanwhile
    (`taxonomy_add_labels` locks them too); returned in the taxonomy's order. Call inside `atomic()`,
    before any task or answer lock.

    FOR NO KEY UPDATE: an answer being stored may still reference a label (its foreign key takes
    FOR KEY SHARE); FOR UPDATE would make that submit, which holds its task, wait on us."""
    labels = list(taxonomy.labels.select_for_update(no_key=True).order_by("id"))
    return sorted(labels, key=lambda label: (label.position, label.id))


def answers_tasks_lock(*, answers: QuerySet) -> list[Task]:
    """Lock, in id order, the queue tasks of the items and scenes these answers are on (a frame's
    is its scene's): the lock every write path takes before the answers. Call inside `atomic()`,
    holding no answer lock yet; lock the answers after, in id order.

    One statement, the answers a subquery: an answer made after it is on a task not locked here."""
    target_tasks = (
        Q(item_id__in=answers.values("item_id"))
        | Q(scene_id__in=answers.values("scene_id"))
        | Q(scene_id__in=answers.filter(item__scene__isnull=False).values("item__scene_id"))
    )
    return list(Task.objects.select_for_update(of=("self",)).filter(target_tasks).order_by("id"))
