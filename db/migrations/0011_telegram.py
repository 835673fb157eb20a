from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0010_edits')]

    initial = False

    operations = [
        ops.AddField(
            model_name='TelegramOutbox',
            name='priority',
            field=fields.SmallIntField(default=2, db_default=2),
        ),
        ops.AddField(
            model_name='TelegramThread',
            name='summary_message_id',
            field=fields.BigIntField(null=True),
        ),
    ]
