"""manage.py make_otp_devices FILE.csv: gives each user of a username,totp_secret CSV a
confirmed django-otp TOTP device with that secret (base32, as authenticator apps take it;
django-otp stores the key as hex). The users must exist (make_users)."""
import base64
import csv

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django_otp.plugins.otp_totp.models import TOTPDevice


class Command(BaseCommand):
    help = "Create a TOTP device per user of a CSV with username and totp_secret columns"

    def add_arguments(self, parser):
        parser.add_argument("csv")

    def handle(self, *args, **options):
        User = get_user_model()
        n = 0
        with open(options["csv"], newline="") as f:
            for row in csv.DictReader(f):
                user = User.objects.get(username=row["username"])
                key = base64.b32decode(row["totp_secret"]).hex()
                TOTPDevice.objects.filter(user=user).delete()
                TOTPDevice.objects.create(user=user, name="authbench", key=key, confirmed=True)
                n += 1
        self.stdout.write(f"{n} TOTP devices")
