"""`manage.py load_demo`: demo datasets, taxonomies, images, scenes and users; later runs reset the
demo passwords and leave the datasets as they find them."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.urls import reverse

from labeling.demo.loader import ADMIN_USERNAME, LABELER_USERNAME, DemoLoaded, demo_load


class Command(BaseCommand):
    help = (
        "Load the demo datasets (Pillow-drawn clothes and stick-figure scenes) with their taxonomies, "
        "a few finished annotations, and the demo users admin and labeler. A demo dataset is loaded once: "
        "later runs leave it as they find it. The demo users get new passwords, printed at the end, "
        "unless --keep-passwords."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--keep-passwords",
            action="store_true",
            help="Leave the passwords of demo users that already exist as they are (new ones still get one).",
        )
        parser.add_argument(
            "--force",
            action="store_true",
            help="Run even with DEBUG off. The demo resets the passwords of the users 'admin' and 'labeler'.",
        )
        parser.add_argument(
            "--url",
            default="http://127.0.0.1:8000/",
            help="Where the site is served, for the login line printed at the end (default: %(default)s).",
        )

    def handle(self, *args, keep_passwords: bool, force: bool, url: str, **options):
        if not settings.DEBUG and not force:
            raise CommandError(
                "DEBUG is off, so this looks like a production database: the demo would reset the "
                "passwords of the users 'admin' and 'labeler'. Pass --force if that is what you want."
            )
        loaded = demo_load(keep_passwords=keep_passwords)
        self.write_summary(loaded)
        site = url.rstrip("/")
        self.write_logins(loaded, site_url=site + reverse("labeling:dataset-list"), admin_url=site + reverse("admin:index"))

    def write_summary(self, loaded: DemoLoaded) -> None:
        for dataset in loaded.datasets:
            self.stdout.write(self.style.MIGRATE_HEADING(dataset.name))
            if dataset.already_loaded:
                self.stdout.write("  already loaded: left as it is (delete it to load it afresh)")
            for noun, tally in dataset.tallies.items():
                if tally.created or tally.present:
                    self.stdout.write(f"  {noun:<12} {tally.created:>3} created, {tally.present:>3} already present")

    def write_logins(self, loaded: DemoLoaded, *, site_url: str, admin_url: str) -> None:
        passwords = {login.username: login.password or "(password unchanged)" for login in loaded.logins}
        self.stdout.write("")
        self.stdout.write(
            self.style.SUCCESS(
                f"Log in at {site_url} as {ADMIN_USERNAME} / {passwords[ADMIN_USERNAME]} "
                f"({LABELER_USERNAME} / {passwords[LABELER_USERNAME]} for a labeler); admin pages at {admin_url}"
            )
        )
