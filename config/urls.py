from django.conf import settings
from django.conf.urls.static import static
from django.contrib import admin
from django.urls import path
from django.views.generic import RedirectView

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="admin:index"), name="home"),
    path("admin/", admin.site.urls),
]

if settings.DEBUG:
    # Development only: production serves media from its own web server or bucket.
    urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)
