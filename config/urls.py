from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from config.health import health
from labeling.media import uploaded_image

urlpatterns = [
    # The labeling pages: the dataset list at /, the labeling page under datasets/.
    path("", include("labeling.urls")),
    path("accounts/login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(next_page="login"), name="logout"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("labeling.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/auth/", include("rest_framework.urls")),
    # Uploaded images, for the members of their dataset only (in development and production alike).
    path("media/<path:name>", uploaded_image, name="uploaded-image"),
    # For load balancers and monitors: no login, no session (see config/health.py).
    path("health/", health, name="health"),
]
