from django.urls import path

from audit import views

app_name = "audit"

urlpatterns = [
    path("datasets/<int:dataset_id>/audit/", views.dataset_audit, name="dataset-audit"),
]
