"""The members inline of the dataset admin page, written through the dataset services.

`dataset_member_set` and `dataset_member_remove` keep a dataset's last admin (the rule lives there
once). The formset's clean() runs the page's changes through them in a savepoint that is rolled
back, so a refusal shows as a form error on the page; DatasetAdmin.save_formset then runs them for
real (`members_apply`). On the add page the dataset does not exist yet: the dry run gives the rows
to a stand-in dataset whose first admin is the page's user, as DatasetAdmin.save_model will make them.

A member is named by typing their username (resolved as the API's members/ resolves it), not picked
from a list: a staff dataset admin who is not a superuser may not browse the accounts (Django's user
autocomplete needs `auth.view_user`), and a select would show them every username.
"""

import uuid


from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db import transaction
from django.forms.models import BaseInlineFormSet

from labeling.models import Dataset, DatasetMember
from labeling.selectors import user_by_username
from labeling.services.datasets import dataset_member_remove, dataset_member_set


class _DryRun(Exception):
    pass


class DatasetMemberForm(forms.ModelForm):
    """A member row: the username typed (cleaned to its user, as `user`) and the role."""

    username = forms.CharField(max_length=150)

    class Meta:
        model = DatasetMember
        fields = ["username", "role"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None:
            self.initial["username"] = self.instance.user.username

    def clean(self):
        cleaned = super().clean()
        if "username" in cleaned:
            try:
                cleaned["user"] = user_by_username(cleaned["username"])
            except ValidationError as error:
                self.add_error("username", error.messages)
        return cleaned


class DatasetMemberFormSet(BaseInlineFormSet):
    # The page's user (DatasetMemberInline.get_formset): on the add page, the new dataset's first admin.
    creator = None

    def clean(self):
        super().clean()
        if any(self.errors):
            return
        named = [form.cleaned_data["user"] for form in self.forms if form.cleaned_data.get("user")]
        if len(set(named)) < len(named):
            raise forms.ValidationError("A user appears in more than one row; give each member one row.")
        try:
            with transaction.atomic():
                self.members_apply(self.instance if self.instance.pk is not None else self._stand_in())
                raise _DryRun
        except _DryRun:
            pass
        except ValidationError as error:
            raise forms.ValidationError(error.messages) from None

    def _stand_in(self) -> Dataset:
        """For the dry run of the add page (rolled back): a dataset whose only member is its creator, an admin."""
        dataset = Dataset.objects.create(name=f"dry run {uuid.uuid4().hex}", kind=Dataset.Kind.IMAGES)
        dataset_member_set(dataset=dataset, user=self.creator, role=DatasetMember.Role.ADMIN)
        return dataset

    def members_apply(self, dataset: Dataset) -> None:
        """The page's changes to `dataset` through the services: new and promoted admins first, then other
        roles, then removals, so that handing the admin role over in one save is not refused.
        Sets what the admin's change message reads (new, changed and deleted objects)."""
        self.new_objects, self.changed_objects, self.deleted_objects = [], [], []
        sets, removals = [], []
        for form in self.forms:
            if not form.cleaned_data or (form.instance.pk is None and not form.has_changed()):
                continue
            user, role = form.cleaned_data.get("user"), form.cleaned_data.get("role")
            # The form has no `user` field, so the instance still names the row's stored user.
            previous = form.instance.user_id if form.instance.pk is not None else None
            if form.cleaned_data.get("DELETE") and form.instance.pk is not None:
                removals.append((previous, form.instance))
                continue
            if form.instance.pk is not None and not form.has_changed():
                continue
            sets.append((role != DatasetMember.Role.ADMIN, user, role, form))
            if previous is not None and previous != user.pk:
                removals.append((previous, None))
        for _, user, role, form in sorted(sets, key=lambda entry: entry[0]):
            member = dataset_member_set(dataset=dataset, user=user, role=role)
            if form.instance.pk is None:
                self.new_objects.append(member)
            else:
                self.changed_objects.append((member, form.changed_data))
        for user_id, instance in removals:
            user = DatasetMember._meta.get_field("user").related_model._default_manager.get(pk=user_id)
            dataset_member_remove(dataset=dataset, user=user)
            if instance is not None:
                self.deleted_objects.append(instance)


class DatasetMemberInline(admin.TabularInline):
    model = DatasetMember
    form = DatasetMemberForm
    formset = DatasetMemberFormSet
    extra = 1

    def get_formset(self, request, obj=None, **kwargs):
        formset = super().get_formset(request, obj, **kwargs)
        return type(formset.__name__, (formset,), {"creator": request.user})
