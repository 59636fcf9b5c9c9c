"""The HTML pages: the signed-in labeler's datasets, and the labeling page of one of them."""

from django.urls import path

from labeling import views

app_name = "labeling"

urlpatterns = [
    path("", views.dataset_list, name="dataset-list"),
    path("datasets/<int:dataset_id>/label/", views.dataset_label, name="dataset-label"),
]
