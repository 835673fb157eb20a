"""E-mail verification of web contacts (core.users.verify_email): the hash of the token
mailed with the confirmation and its expiry."""

from tortoise import fields, migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [('models', '0011_telegram')]

    initial = False

    operations = [
        ops.AddField(
            model_name='User',
            name='email_verify_hash',
            field=fields.CharField(default='', db_default='', max_length=64),
        ),
        ops.AddField(
            model_name='User',
            name='email_verify_expires',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
    ]
