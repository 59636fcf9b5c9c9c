"""Failed sign-ins, counted in the database so that every web process (several gunicorn workers, on
several machines) sees the same counts: a per-process cache would let an attacker spread guesses
over the workers."""

from django.db import models


class LoginThrottle(models.Model):
    """The failed sign-ins of one username, or from one client address, in the current window."""

    class Scope(models.TextChoices):
        USERNAME = "username"
        IP = "ip"

    scope = models.CharField(max_length=10, choices=Scope.choices)
    key = models.CharField(max_length=150, help_text="The username (lower-cased) or the client's IP address.")
    failures = models.PositiveIntegerField(default=0, help_text="Failed sign-ins since window_started_at.")
    window_started_at = models.DateTimeField(help_text="The first failure of the current window.")
    locked_until = models.DateTimeField(null=True, blank=True, help_text="Sign-ins are refused until then, even with the right password.")

    class Meta:
        constraints = [
            # Also the index of the lookup every sign-in makes: "this username's / this address's row".
            models.UniqueConstraint(fields=["scope", "key"], name="accounts_loginthrottle_one_per_key"),
        ]
        indexes = [
            # accounts_purge_login_throttles: "rows whose window is over".
            models.Index(fields=["window_started_at"], name="accounts_throttle_window"),
        ]

    def __str__(self) -> str:
        return f"{self.scope} {self.key}: {self.failures} failure(s)"
