"""Rows for tests. Factories build valid rows; each test changes only what it is about."""

import io

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from labeling.models import CategoryAnnotation, Dataset, DatasetMember, Item, Scene
from taxonomies.models import Label, Taxonomy
from taxonomies.services import taxonomies_changed


def png_upload(name: str = "photo.png", size: tuple[int, int] = (64, 48), color: str = "red") -> SimpleUploadedFile:
    """A real PNG made with Pillow, as a browser would upload it."""
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return SimpleUploadedFile(name, buffer.getvalue(), content_type="image/png")


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@example.com")
    password = factory.django.Password("correct horse battery staple")


class DatasetFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Dataset

    name = factory.Sequence(lambda n: f"Dataset {n}")
    kind = Dataset.Kind.IMAGES


class DatasetMemberFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = DatasetMember

    dataset = factory.SubFactory(DatasetFactory)
    user = factory.SubFactory(UserFactory)
    role = DatasetMember.Role.LABELER


class TaxonomyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Taxonomy

    dataset = factory.SubFactory(DatasetFactory)
    taxonomy_name = factory.Sequence(lambda n: f"taxonomy_{n}")

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        # As taxonomies.services does, so cached taxonomies are read again.
        taxonomy = super()._create(model_class, *args, **kwargs)
        taxonomies_changed(dataset_id=taxonomy.dataset_id)
        return taxonomy


class LabelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Label

    taxonomy = factory.SubFactory(TaxonomyFactory)
    name = factory.Sequence(lambda n: f"label_{n}")
    position = factory.Sequence(lambda n: n)

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        label = super()._create(model_class, *args, **kwargs)
        taxonomies_changed(dataset_id=label.taxonomy.dataset_id)
        return label


class ItemFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Item

    dataset = factory.SubFactory(DatasetFactory)
    reference_id = factory.Sequence(lambda n: f"image_{n}")
    image_url = factory.LazyAttribute(lambda item: f"https://images.example.com/{item.reference_id}.jpg")


class SceneFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Scene

    dataset = factory.SubFactory(DatasetFactory, kind=Dataset.Kind.SCENES)
    reference_id = factory.Sequence(lambda n: f"scene_{n}")
    video_url = factory.LazyAttribute(lambda scene: f"https://videos.example.com/{scene.reference_id}.mp4")
    frame_rate = 10.0


class CategoryAnnotationFactory(factory.django.DjangoModelFactory):
    """A draft single-label annotation on an item; pass `label` from the same taxonomy."""

    class Meta:
        model = CategoryAnnotation

    item = factory.SubFactory(ItemFactory)
    dataset = factory.LazyAttribute(lambda annotation: annotation.item.dataset)
    taxonomy = factory.SubFactory(TaxonomyFactory, dataset=factory.SelfAttribute("..dataset"))


def with_permission(user, permission: str):
    """The user, given a model permission ("labeling.add_dataset"), fresh from the database (a
    user object caches its permissions once asked)."""
    app_label, codename = permission.split(".")
    user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    return get_user_model().objects.get(pk=user.pk)
