"""The Django admin for a staff user who is not a superuser: only the datasets where they are an
admin, and only those datasets' items, scenes, annotations, taxonomies, members and audit events;
foreign-key choices scoped the same way; and the members inline, which names members by username
(never listing the accounts), keeps a dataset's last admin."""

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from audit.models import AuditEvent
from labeling.models import CategoryAnnotation, Dataset, DatasetMember, Item
from taxonomies.models import Taxonomy
from taxonomies.services import taxonomy_create
from tests.factories import CategoryAnnotationFactory, DatasetFactory, DatasetMemberFactory, SceneFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def stella(db):
    """Staff with every model permission of the apps, admin of "Mine" only (a labeler of "Labeled")."""
    user = UserFactory(username="stella", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label__in=["labeling", "taxonomies", "audit"]))
    return user


@pytest.fixture
def world(stella):
    """The rows of three datasets: Mine (stella admins it), Labeled (she labels it), Theirs."""
    rows = {}
    for name, role in [("Mine", "admin"), ("Labeled", "labeler"), ("Theirs", None)]:
        dataset = DatasetFactory(name=name, nucleus_dataset_id=f"ds_{name.lower()}")
        if role:
            DatasetMemberFactory(dataset=dataset, user=stella, role=role)
        DatasetMemberFactory(dataset=dataset, user=UserFactory(username=f"boss_of_{name.lower()}"), role="admin")
        taxonomy = taxonomy_create(dataset=dataset, taxonomy_name=f"tax_{name.lower()}", labels=["a", "b"])
        annotation = CategoryAnnotationFactory(item__dataset=dataset, item__reference_id=f"item_{name.lower()}", dataset=dataset, taxonomy=taxonomy)
        scene_dataset = DatasetFactory(name=f"{name} scenes", kind="scenes")
        if role:
            DatasetMemberFactory(dataset=scene_dataset, user=stella, role=role)
        rows[name] = {
            "dataset": dataset, "taxonomy": taxonomy, "annotation": annotation, "item": annotation.item,
            "scene": SceneFactory(dataset=scene_dataset, reference_id=f"scene_{name.lower()}"),
            "event": AuditEvent.objects.filter(dataset=dataset).first(),
        }
    return rows


@pytest.fixture
def staff_client(client, stella):
    client.force_login(stella)
    return client


PAGES = {
    "dataset": "labeling_dataset", "item": "labeling_item", "scene": "labeling_scene",
    "annotation": "labeling_categoryannotation", "taxonomy": "taxonomies_taxonomy", "event": "audit_auditevent",
}


@pytest.mark.parametrize("kind", list(PAGES))
def test_a_change_list_shows_only_the_datasets_they_admin(staff_client, world, kind):
    page = staff_client.get(reverse(f"admin:{PAGES[kind]}_changelist")).content.decode()
    # Names from the filter sidebar too: Theirs and Labeled appear nowhere.
    assert "Theirs" not in page and "theirs" not in page and "Labeled" not in page and "labeled" not in page
    if kind in {"dataset", "taxonomy", "item", "annotation"}:
        assert "mine" in page.lower()


@pytest.mark.parametrize("kind", list(PAGES))
@pytest.mark.parametrize("view", ["change", "history", "delete"])
def test_another_datasets_row_is_a_404(staff_client, world, kind, view):
    # Nobody deletes audit events (403 for every one of them, which tells nothing either).
    refused = 403 if (kind, view) == ("event", "delete") else 404
    for name in ["Theirs", "Labeled"]:
        row = world[name][kind]
        assert staff_client.get(reverse(f"admin:{PAGES[kind]}_{view}", args=[row.pk])).status_code == refused, (name, kind, view)


def test_their_own_rows_open(staff_client, world):
    for kind in ["dataset", "item", "taxonomy", "annotation", "event"]:
        assert staff_client.get(reverse(f"admin:{PAGES[kind]}_change", args=[world["Mine"][kind].pk])).status_code == 200, kind


def test_a_taxonomy_can_only_be_added_to_a_dataset_they_admin(staff_client, world):
    page = staff_client.get(reverse("admin:taxonomies_taxonomy_add")).content.decode()
    assert f'<option value="{world["Mine"]["dataset"].pk}">' in page
    assert f'<option value="{world["Theirs"]["dataset"].pk}">' not in page and "Theirs" not in page
    form = {
        "dataset": str(world["Theirs"]["dataset"].pk), "taxonomy_name": "sneaky", "type": "category", "applies_to": "items",
        "required": "on", "labels-TOTAL_FORMS": "1", "labels-INITIAL_FORMS": "0", "labels-MIN_NUM_FORMS": "0",
        "labels-MAX_NUM_FORMS": "1000", "labels-0-name": "x", "labels-0-hotkey": "", "labels-0-position": "",
    }
    response = staff_client.post(reverse("admin:taxonomies_taxonomy_add"), form)
    assert response.status_code == 200 and "Select a valid choice" in response.content.decode()
    assert not Taxonomy.objects.filter(taxonomy_name="sneaky").exists()


def test_a_superuser_sees_every_dataset(client, superuser, world):
    client.force_login(superuser)
    for kind in ["dataset", "item", "taxonomy"]:
        page = client.get(reverse(f"admin:{PAGES[kind]}_changelist")).content.decode().lower()
        assert "mine" in page and "theirs" in page and "labeled" in page, kind


def test_a_staff_user_who_admins_nothing_sees_nothing(client, world):
    nobody = UserFactory(username="nemo", is_staff=True)
    nobody.user_permissions.set(Permission.objects.filter(content_type__app_label__in=["labeling", "taxonomies", "audit"]))
    client.force_login(nobody)
    assert "0 datasets" in client.get(reverse("admin:labeling_dataset_changelist")).content.decode()
    assert client.get(reverse("admin:labeling_item_change", args=[world["Mine"]["item"].pk])).status_code == 404


def member_form(dataset, rows: list[dict]) -> dict:
    """POST data for the dataset change page: its fields and one members inline row per dict
    (`id` for an existing membership, DELETE to remove it)."""
    data = {
        "name": dataset.name, "nucleus_dataset_id": dataset.nucleus_dataset_id,
        "memberships-TOTAL_FORMS": str(len(rows)), "memberships-INITIAL_FORMS": str(sum("id" in row for row in rows)),
        "memberships-MIN_NUM_FORMS": "0", "memberships-MAX_NUM_FORMS": "1000",
    }
    for index, row in enumerate(rows):
        for key, value in {"dataset": str(dataset.pk), **row}.items():
            data[f"memberships-{index}-{key}"] = value
    return data


class TestTheMembersInline:
    @pytest.fixture
    def only_admin(self, dataset, superuser):
        return DatasetMemberFactory(dataset=dataset, user=UserFactory(username="solo"), role="admin")

    def post(self, client, dataset, rows):
        return client.post(reverse("admin:labeling_dataset_change", args=[dataset.pk]), member_form(dataset, rows))

    def row(self, member, **changes) -> dict:
        return {"id": str(member.pk), "username": member.user.username, "role": member.role, **changes}

    @pytest.mark.parametrize("change", [{"DELETE": "on"}, {"role": "labeler"}], ids=["remove", "demote"])
    def test_it_refuses_to_leave_a_dataset_without_an_admin_as_a_form_error(self, client, superuser, dataset, only_admin, change):
        client.force_login(superuser)
        response = self.post(client, dataset, [self.row(only_admin, **change)])
        assert response.status_code == 200
        assert "This is the dataset&#x27;s last admin; make someone else admin first." in response.content.decode()
        assert list(DatasetMember.objects.filter(dataset=dataset).values_list("user__username", "role")) == [("solo", "admin")]

    def test_handing_the_admin_role_over_in_one_save_is_allowed(self, client, superuser, dataset, only_admin):
        UserFactory(username="heir")
        client.force_login(superuser)
        response = self.post(client, dataset, [self.row(only_admin, role="labeler"), {"username": "heir", "role": "admin"}])
        assert response.status_code == 302, response.content.decode()[:3000]
        assert dict(DatasetMember.objects.filter(dataset=dataset).values_list("user__username", "role")) == {"solo": "labeler", "heir": "admin"}

    def test_a_staff_admin_cannot_remove_themselves_as_the_last_admin(self, staff_client, world, stella):
        mine = world["Mine"]["dataset"]
        DatasetMember.objects.filter(dataset=mine).exclude(user=stella).delete()
        (membership,) = DatasetMember.objects.filter(dataset=mine)
        response = self.post(staff_client, mine, [self.row(membership, DELETE="on")])
        assert response.status_code == 200 and "last admin" in response.content.decode()
        assert DatasetMember.objects.filter(dataset=mine, user=stella, role="admin").exists()

    def test_a_staff_admin_adds_a_member_by_username_without_seeing_the_accounts(self, staff_client, world, stella):
        """Not a superuser, no `auth.view_user`: the username typed is resolved as members/ resolves it,
        and the page lists no account that is not a member already."""
        mine = world["Mine"]["dataset"]
        UserFactory(username="bobby")
        page = staff_client.get(reverse("admin:labeling_dataset_change", args=[mine.pk])).content.decode()
        assert "bobby" not in page and "boss_of_theirs" not in page
        rows = [self.row(member) for member in DatasetMember.objects.filter(dataset=mine).select_related("user")]
        response = self.post(staff_client, mine, [*rows, {"username": "bobby", "role": "labeler"}])
        assert response.status_code == 302, response.content.decode()[:3000]
        assert dict(mine.memberships.values_list("user__username", "role")) == {"stella": "admin", "boss_of_mine": "admin", "bobby": "labeler"}

    def test_an_unknown_username_is_a_form_error_and_nothing_changes(self, staff_client, world):
        mine = world["Mine"]["dataset"]
        before = sorted(mine.memberships.values_list("user__username", "role"))
        rows = [self.row(member) for member in DatasetMember.objects.filter(dataset=mine).select_related("user")]
        response = self.post(staff_client, mine, [*rows, {"username": "nobody_by_this_name", "role": "labeler"}])
        assert response.status_code == 200
        assert "No user has this username." in response.content.decode()
        assert sorted(mine.memberships.values_list("user__username", "role")) == before

    def test_a_user_named_in_two_rows_is_a_form_error(self, client, superuser, dataset, only_admin):
        client.force_login(superuser)
        response = self.post(client, dataset, [self.row(only_admin), {"username": "solo", "role": "labeler"}])
        assert response.status_code == 200 and "A user appears in more than one row" in response.content.decode()
        assert list(DatasetMember.objects.filter(dataset=dataset).values_list("user__username", "role")) == [("solo", "admin")]

    def test_renaming_a_row_moves_the_membership(self, client, superuser, dataset, only_admin):
        DatasetMemberFactory(dataset=dataset, user=UserFactory(username="bob"), role="labeler")
        UserFactory(username="dana")
        client.force_login(superuser)
        bob = DatasetMember.objects.get(dataset=dataset, user__username="bob")
        response = self.post(client, dataset, [self.row(only_admin), self.row(bob, username="dana")])
        assert response.status_code == 302, response.content.decode()[:3000]
        assert dict(DatasetMember.objects.filter(dataset=dataset).values_list("user__username", "role")) == {"solo": "admin", "dana": "labeler"}


def test_items_show_their_image_check_in_the_admin(client, superuser, dataset):
    Item.objects.create(dataset=dataset, reference_id="bad", image="items/x/bad.png", image_check="failed", image_error="The image could not be decoded (truncated).")
    client.force_login(superuser)
    page = client.get(reverse("admin:labeling_item_changelist")).content.decode()
    assert "Failed verification" in page and "The image could not be decoded (truncated)." in page
    assert CategoryAnnotation.objects.count() == 0


class TestTheMembersInlineOfTheAddPage:
    """The add page has no dataset yet; its creator becomes the first admin (DatasetAdmin.save_model),
    and the same rule keeps an admin: a form error, never a 500."""

    def post(self, client, name, rows: list[dict]):
        data = {
            "name": name, "kind": "images", "nucleus_dataset_id": "",
            "memberships-TOTAL_FORMS": str(len(rows)), "memberships-INITIAL_FORMS": "0",
            "memberships-MIN_NUM_FORMS": "0", "memberships-MAX_NUM_FORMS": "1000",
        }
        for index, row in enumerate(rows):
            data.update({f"memberships-{index}-{key}": value for key, value in row.items()})
        return client.post(reverse("admin:labeling_dataset_add"), data)

    def test_demoting_the_creator_is_a_form_error_and_nothing_is_created(self, client, superuser):
        client.force_login(superuser)
        response = self.post(client, "Shoes", [{"username": superuser.username, "role": "labeler"}])
        assert response.status_code == 200
        assert "This is the dataset&#x27;s last admin; make someone else admin first." in response.content.decode()
        assert not Dataset.objects.exists() and not DatasetMember.objects.exists()

    def test_a_staff_creator_demoting_themselves_is_a_form_error(self, client, stella):
        client.force_login(stella)
        response = self.post(client, "Shoes", [{"username": "stella", "role": "labeler"}, {"username": UserFactory().username, "role": "labeler"}])
        assert response.status_code == 200 and "last admin" in response.content.decode()
        assert not Dataset.objects.filter(name="Shoes").exists()

    def test_the_creator_may_hand_the_admin_role_to_someone_else_on_it(self, client, superuser):
        UserFactory(username="heir")
        client.force_login(superuser)
        response = self.post(client, "Shoes", [{"username": superuser.username, "role": "labeler"}, {"username": "heir", "role": "admin"}])
        assert response.status_code == 302, response.content.decode()[:3000]
        assert dict(Dataset.objects.get().memberships.values_list("user__username", "role")) == {"root": "labeler", "heir": "admin"}


class TestTheNucleusLinkCheckComesAfterScoping:
    """The change page asks Nucleus about a new nucleus_dataset_id before saving; for a page the user
    may not save, nothing is asked (nor said) at all."""

    @pytest.fixture
    def on_the_fake(self, fake_nucleus, settings):
        settings.NUCLEUS_API_KEY, settings.NUCLEUS_ENDPOINT = fake_nucleus.api_key, fake_nucleus.endpoint
        return fake_nucleus

    @pytest.mark.parametrize("name", ["Theirs", "Labeled"])
    def test_a_post_to_another_datasets_page_is_a_404_without_asking_nucleus(self, staff_client, world, on_the_fake, name):
        theirs = world[name]["dataset"]
        probe = on_the_fake.create_dataset("probe")
        response = staff_client.post(reverse("admin:labeling_dataset_change", args=[theirs.pk]), member_form(theirs, []) | {"nucleus_dataset_id": probe})
        assert response.status_code == 404
        assert on_the_fake.requests == []
        assert Dataset.objects.get(pk=theirs.pk).nucleus_dataset_id == theirs.nucleus_dataset_id

    def test_a_refused_add_is_a_403_without_asking_nucleus(self, client, on_the_fake):
        staff = UserFactory(username="nadd", is_staff=True)
        staff.user_permissions.set(Permission.objects.filter(codename__in=["view_dataset", "change_dataset"]))
        client.force_login(staff)
        response = client.post(reverse("admin:labeling_dataset_add"), {"name": "Shoes", "kind": "images", "nucleus_dataset_id": on_the_fake.create_dataset("probe")})
        assert response.status_code == 403
        assert on_the_fake.requests == [] and not Dataset.objects.filter(name="Shoes").exists()

    def test_their_own_page_still_asks_nucleus(self, staff_client, world, on_the_fake):
        mine = world["Mine"]["dataset"]
        response = staff_client.post(reverse("admin:labeling_dataset_change", args=[mine.pk]), member_form(mine, []) | {"nucleus_dataset_id": "ds_nowhere"})
        assert response.status_code == 200 and "Nucleus has no dataset" in response.content.decode()
        assert len(on_the_fake.requests) == 1

    def test_the_check_uses_the_stored_kind_not_the_posted_one(self, staff_client, world, on_the_fake):
        mine = world["Mine"]["dataset"]
        images = on_the_fake.create_dataset("images on nucleus")
        response = staff_client.post(
            reverse("admin:labeling_dataset_change", args=[mine.pk]), member_form(mine, []) | {"nucleus_dataset_id": images, "kind": "scenes"}
        )
        assert response.status_code == 302, response.content.decode()[:3000]
        assert Dataset.objects.get(pk=mine.pk).nucleus_dataset_id == images
