"""The Content Security Policy header, on every response (Django 5.2 has no built-in one).

The policy is CONTENT_SECURITY_POLICY (config/settings.py). It allows no inline script, no inline
style and no eval anywhere, the admin and the API docs included: templates load ES modules and
style sheets from /static/, and pages get their data through `json_script` or `data-*` attributes.
A response that already carries the header (a view that set its own) keeps it.
"""

from django.conf import settings


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response
        self.header = "Content-Security-Policy-Report-Only" if settings.CONTENT_SECURITY_POLICY_REPORT_ONLY else "Content-Security-Policy"

    def __call__(self, request):
        response = self.get_response(request)
        if settings.CONTENT_SECURITY_POLICY and self.header not in response:
            response[self.header] = settings.CONTENT_SECURITY_POLICY
        return response
