from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.templatetags.static import static
from django.urls import include, path
from django.utils.functional import lazy
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from accounts.forms import ThrottledAuthenticationForm
from config.health import health
from labeling.media import uploaded_image

# Sign-ins are throttled by the authentication backend; this form says so when it refuses one.
login_view = auth_views.LoginView.as_view(redirect_authenticated_user=True, authentication_form=ThrottledAuthenticationForm)

urlpatterns = [
    # The labeling pages: the dataset list at /, the labeling page under datasets/.
    path("", include("labeling.urls")),
    # The audit log of a dataset, for its admins.
    path("", include("audit.urls")),
    path("accounts/login/", login_view, name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(next_page="login"), name="logout"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("labeling.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves the page's start-up script as a file (?script): no inline script under the CSP.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    # The browsable API's sign-in page is the site's own (the throttled form), before rest_framework.urls.
    path("api/auth/login/", login_view, name="api-login"),
    path("api/auth/", include("rest_framework.urls")),
    # Uploaded images, for the members of their dataset only (in development and production alike).
    path("media/<path:name>", uploaded_image, name="uploaded-image"),
    # For load balancers and monitors: no login, no session (see config/health.py).
    path("health/", health, name="health"),
    # Browsers ask for /favicon.ico on pages that name no icon (the API's JSON, the media files).
    path("favicon.ico", RedirectView.as_view(url=lazy(static, str)("favicon.svg")), name="favicon"),
]

# An unknown URL under /api/ answers in the API's {"errors": [...]} shape.
handler404 = "labeling.api.errors.not_found"
