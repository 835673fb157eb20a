"""Telegram edits in update order across replicas (bot.handlers.message_edits): the update id
of the newest edit applied to a message, so an older edit reaching another process later
changes nothing."""

from tortoise import fields, migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("models", "0018_stats_trigger_order")]

    initial = False

    operations = [
        ops.AddField(
            model_name="RequestMessage",
            name="telegram_edit_update",
            field=fields.BigIntField(null=True),
        ),
    ]
