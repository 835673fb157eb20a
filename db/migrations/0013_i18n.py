"""System messages in their reader's language (core.i18n): the message's key and params
beside its Russian `content`."""

from tortoise import fields, migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [('models', '0012_verify')]

    initial = False

    operations = [
        ops.AddField(
            model_name='RequestMessage',
            name='content_i18n',
            field=fields.JSONField(null=True),
        ),
    ]
