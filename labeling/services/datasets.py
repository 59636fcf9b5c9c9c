"""Writes to datasets and their members."""

from django.core.exceptions import ValidationError
from django.db import transaction

from labeling.models import Dataset, DatasetMember
from labeling.services.nucleus_items import nucleus_link_check
from labeling.services.sync import sync_nucleus_link_changed
from taxonomies.text import validate_name_text


def dataset_create(
    *, name: str, kind: str, nucleus_dataset_id: str = "", nucleus_push_items: bool = False, created_by=None
) -> Dataset:
    """Create a dataset; its creator, if given, becomes its first admin. A Nucleus dataset it links
    to is checked first (see `dataset_update`)."""
    dataset = Dataset(name=name, kind=kind, nucleus_dataset_id=nucleus_dataset_id, nucleus_push_items=nucleus_push_items)
    _name_check(name)
    dataset.full_clean()
    # Before the transaction: no network I/O while it is open.
    dataset.nucleus_link_warning = nucleus_link_check(nucleus_dataset_id=nucleus_dataset_id, kind=kind)
    with transaction.atomic():
        dataset.save()
        if created_by is not None:
            DatasetMember.objects.create(dataset=dataset, user=created_by, role=DatasetMember.Role.ADMIN)
    return dataset


def dataset_update(*, dataset: Dataset, name: str, nucleus_dataset_id: str, nucleus_push_items: bool) -> Dataset:
    """Rename a dataset, link it to a Nucleus dataset, or choose whether its syncs append its items
    to Nucleus first. Its kind is fixed: it decides what it holds.

    A new link is checked on Nucleus (`nucleus_link_check`): an id Nucleus does not know, or a
    dataset of the other kind, is a ValidationError on `nucleus_dataset_id`. When the check could
    not run, the link is stored and `dataset.nucleus_link_warning` says why ("" otherwise). A changed
    link makes every finished annotation go again, to the new Nucleus dataset (`sync_nucleus_link_changed`)."""
    relinked = nucleus_dataset_id != dataset.nucleus_dataset_id
    dataset.name = name
    dataset.nucleus_dataset_id = nucleus_dataset_id
    dataset.nucleus_push_items = nucleus_push_items
    _name_check(name)
    dataset.full_clean()
    dataset.nucleus_link_warning = nucleus_link_check(nucleus_dataset_id=nucleus_dataset_id, kind=dataset.kind) if relinked else ""
    with transaction.atomic():
        dataset.save(update_fields=["name", "nucleus_dataset_id", "nucleus_push_items"])
        if relinked:
            sync_nucleus_link_changed(dataset=dataset)
    return dataset


def _name_check(name: str) -> None:
    """A dataset's name is a name (taxonomies.text); the admin form asks the same validator."""
    try:
        validate_name_text(name)
    except ValidationError as error:
        raise ValidationError({"name": error.messages}) from None


def dataset_member_set(*, dataset: Dataset, user, role: str) -> DatasetMember:
    """Give a user a role in a dataset, adding them as a member if they are not one yet."""
    member = DatasetMember(dataset=dataset, user=user, role=role)
    member.full_clean(validate_constraints=False)
    with transaction.atomic():
        if role != DatasetMember.Role.ADMIN:
            _keep_an_admin(dataset=dataset, leaving=user)
        member, _ = DatasetMember.objects.update_or_create(dataset=dataset, user=user, defaults={"role": role})
    return member


def dataset_member_remove(*, dataset: Dataset, user) -> None:
    with transaction.atomic():
        _keep_an_admin(dataset=dataset, leaving=user)
        DatasetMember.objects.filter(dataset=dataset, user=user).delete()


def _keep_an_admin(*, dataset: Dataset, leaving) -> None:
    """Refuse a change that would leave the dataset without an admin to manage it.

    Caller must be inside `transaction.atomic()`: the admins are locked so that two admins demoting
    each other at once cannot both succeed."""
    admins = list(
        DatasetMember.objects.select_for_update()
        .filter(dataset=dataset, role=DatasetMember.Role.ADMIN)
        .values_list("user_id", flat=True)
    )
    if admins == [leaving.pk]:
        raise ValidationError({"role": "This is the dataset's last admin; make someone else admin first."})
