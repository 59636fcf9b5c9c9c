"""The HTML pages: the signed-in labeler's datasets, the labeling page of one of them, and its sync page (admins)."""

from django.urls import path

from labeling import views

app_name = "labeling"

urlpatterns = [
    path("", views.dataset_list, name="dataset-list"),
    path("datasets/<int:dataset_id>/label/", views.dataset_label, name="dataset-label"),
    path("datasets/<int:dataset_id>/sync/", views.dataset_sync, name="dataset-sync"),
    path("datasets/<int:dataset_id>/sync/retry/", views.dataset_sync_retry, name="dataset-sync-retry"),
    path("datasets/<int:dataset_id>/sync/start/", views.dataset_sync_start, name="dataset-sync-start"),
]
