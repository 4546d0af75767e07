"""manage.py make_users FILE.csv: creates (or resets) each user of a username,password CSV."""
import csv

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create the users of a CSV with username and password columns"

    def add_arguments(self, parser):
        parser.add_argument("csv")

    def handle(self, *args, **options):
        User = get_user_model()
        n = 0
        with open(options["csv"], newline="") as f:
            for row in csv.DictReader(f):
                user, _ = User.objects.get_or_create(username=row["username"])
                user.set_password(row["password"])  # the default hasher, as a sign-up would
                user.save()
                n += 1
        self.stdout.write(f"{n} users")
