"""Edits and deletions (core.message_edits): a message's edit time and soft-delete flag;
every Telegram copy of a message recorded with its kind and part."""

from tortoise import fields, migrations
from tortoise.indexes import Index
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [('models', '0009_identity')]

    initial = False

    operations = [
        ops.AddField(
            model_name='RequestMessage',
            name='edited_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='RequestMessage',
            name='is_deleted',
            field=fields.BooleanField(default=False, db_default=False),
        ),
        ops.AddField(
            model_name='TelegramMessageLink',
            name='kind',
            field=fields.CharField(default='', db_default='', max_length=8),
        ),
        ops.AddField(
            model_name='TelegramMessageLink',
            name='part',
            field=fields.SmallIntField(default=1, db_default=1),
        ),
        ops.AddIndex(
            model_name='TelegramMessageLink',
            index=Index(fields=['request_message_id']),
        ),
    ]
