"""Agent tools: canned responses, request history, audit log, CSAT and staff-stats columns.

Existing completed requests get `completed_at` from their last status change, so staff
stats count them from the first day (for closed ones that time is the closing, not the
completion: they stay unknown).
"""

from tortoise import migrations
from tortoise.migrations import operations as ops
from db.models import HistoryChannel
from orjson import loads
from tortoise.fields.base import OnDelete
from tortoise.fields.data import JSON_DUMPS
from tortoise import fields
from tortoise.indexes import Index

async def backfill_completed_at(apps, schema_editor) -> None:
    await schema_editor.client.execute_script(
        "UPDATE customer_requests SET completed_at = status_changed_at "
        "WHERE status = 'completed' AND completed_at IS NULL"
    )


async def nothing(apps, schema_editor) -> None:
    return None


class Migration(migrations.Migration):
    dependencies = [('models', '0005_parked_events')]

    initial = False

    operations = [
        ops.CreateModel(
            name='AuditEntry',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('action', fields.CharField(max_length=40)),
                ('actor_id', fields.IntField(null=True)),
                ('actor_name', fields.CharField(default='', max_length=301)),
                ('channel', fields.CharEnumField(description='rest: rest\ntelegram: telegram\nweb: web\nscheduler: scheduler\ncli: cli', enum_type=HistoryChannel, max_length=20)),
                ('client_address', fields.CharField(default='', max_length=64)),
                ('target_type', fields.CharField(default='', max_length=40)),
                ('target_id', fields.CharField(default='', max_length=64)),
                ('details', fields.JSONField(default=dict, encoder=JSON_DUMPS, decoder=loads)),
                ('created_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'audit_log', 'app': 'models', 'indexes': [Index(fields=['action', 'id']), Index(fields=['actor_id', 'id'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='CannedResponse',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('shortcut', fields.CharField(max_length=32)),
                ('title', fields.CharField(max_length=200)),
                ('content', fields.TextField(unique=False)),
                ('language', fields.CharField(default='ru', max_length=2)),
                ('is_shared', fields.BooleanField(default=False)),
                ('created_by', fields.ForeignKeyField('models.User', source_field='created_by_id', db_constraint=True, to_field='id', related_name='canned_responses', on_delete=OnDelete.CASCADE)),
                ('scope_owner', fields.IntField(default=0)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'canned_responses', 'app': 'models', 'unique_together': (('scope_owner', 'shortcut', 'language'),), 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='RequestHistory',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('request_id', fields.IntField()),
                ('field', fields.CharField(max_length=40)),
                ('old_value', fields.TextField(null=True, unique=False)),
                ('new_value', fields.TextField(null=True, unique=False)),
                ('actor_id', fields.IntField(null=True)),
                ('actor_name', fields.CharField(default='', max_length=301)),
                ('channel', fields.CharEnumField(description='rest: rest\ntelegram: telegram\nweb: web\nscheduler: scheduler\ncli: cli', enum_type=HistoryChannel, max_length=20)),
                ('created_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'request_history', 'app': 'models', 'indexes': [Index(fields=['request_id', 'id'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='CustomerRequest',
            name='completed_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='CustomerRequest',
            name='first_response_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='CustomerRequest',
            name='first_response_by_id',
            field=fields.IntField(null=True),
        ),
        ops.AddField(
            model_name='CustomerRequest',
            name='rated_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='CustomerRequest',
            name='rating',
            field=fields.SmallIntField(null=True),
        ),
        ops.AddField(
            model_name='CustomerRequest',
            name='rating_comment',
            field=fields.TextField(null=True, unique=False),
        ),
        ops.AddIndex(
            model_name='CustomerRequest',
            index=Index(fields=['assigned_admin_id', 'completed_at']),
        ),
        ops.AddIndex(
            model_name='CustomerRequest',
            index=Index(fields=['first_response_at']),
        ),
        ops.AddIndex(
            model_name='CustomerRequest',
            index=Index(fields=['rating']),
        ),
        ops.RunPython(backfill_completed_at, nothing),
    ]
