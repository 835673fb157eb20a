"""Telegram edits in order across replicas (bot.handlers.message_edits): where the newest
edit applied to a message stands (its edit_date, then its update id), so an older edit
reaching another process later changes nothing."""

from tortoise import fields, migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("models", "0018_stats_trigger_order")]

    initial = False

    operations = [
        ops.AddField(
            model_name="RequestMessage",
            name="telegram_edit_order",
            field=fields.BigIntField(null=True),
        ),
    ]
