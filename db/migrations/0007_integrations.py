from tortoise import migrations
from tortoise.migrations import operations as ops
from db.models import Source
from orjson import loads
from tortoise.fields.base import OnDelete
from tortoise.fields.data import JSON_DUMPS
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0006_agent_tools')]

    initial = False

    operations = [
        ops.CreateModel(
            name='InboundMail',
            fields=[
                ('message_id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=200)),
                ('request_id', fields.IntField()),
                ('request_message_id', fields.IntField(null=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'mail_inbound', 'app': 'models', 'pk_attr': 'message_id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='MailOutbox',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('dedup_key', fields.CharField(unique=True, max_length=128)),
                ('request_id', fields.IntField(null=True)),
                ('kind', fields.CharField(max_length=20)),
                ('to_address', fields.CharField(max_length=254)),
                ('subject', fields.CharField(max_length=300)),
                ('body', fields.TextField(unique=False)),
                ('reply_to', fields.CharField(null=True, max_length=254)),
                ('message_id', fields.CharField(max_length=200)),
                ('status', fields.CharField(default='pending', max_length=12)),
                ('attempts', fields.IntField(default=0)),
                ('not_before', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('last_error', fields.TextField(null=True, unique=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('sent_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'mail_outbox', 'app': 'models', 'indexes': [Index(fields=['status', 'id'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='WebhookSubscription',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('url', fields.CharField(max_length=2000)),
                ('events', fields.JSONField(default=list, encoder=JSON_DUMPS, decoder=loads)),
                ('secret', fields.CharField(max_length=128)),
                ('description', fields.CharField(default='', max_length=200)),
                ('is_active', fields.BooleanField(default=True)),
                ('created_by', fields.ForeignKeyField('models.User', source_field='created_by_id', null=True, db_constraint=True, to_field='id', related_name='webhook_subscriptions', on_delete=OnDelete.SET_NULL)),
                ('after_event_id', fields.BigIntField(default=0)),
                ('lease_holder', fields.CharField(null=True, max_length=64)),
                ('lease_until', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'webhook_subscriptions', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='WebhookDelivery',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('subscription', fields.ForeignKeyField('models.WebhookSubscription', source_field='subscription_id', db_constraint=True, to_field='id', related_name='deliveries', on_delete=OnDelete.CASCADE)),
                ('dedup_key', fields.CharField(unique=True, max_length=128)),
                ('guid', fields.CharField(max_length=36)),
                ('event', fields.CharField(max_length=40)),
                ('event_id', fields.BigIntField(null=True)),
                ('body', fields.TextField(unique=False)),
                ('status', fields.CharField(default='pending', max_length=12)),
                ('attempts', fields.IntField(default=0)),
                ('next_attempt_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('give_up_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('last_status_code', fields.IntField(null=True)),
                ('last_error', fields.TextField(null=True, unique=False)),
                ('attempt_log', fields.JSONField(default=list, encoder=JSON_DUMPS, decoder=loads)),
                ('redelivery_of', fields.BigIntField(null=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('delivered_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'webhook_deliveries', 'app': 'models', 'indexes': [Index(fields=['subscription_id', 'status', 'id']), Index(fields=['status', 'subscription_id'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.AlterField(
            model_name='ChatMessage',
            name='source',
            field=fields.CharEnumField(default=Source.api, description='api: api\nweb: web\ntelegram: telegram\nemail: email', enum_type=Source, max_length=20),
        ),
        ops.AlterField(
            model_name='CustomerRequest',
            name='source',
            field=fields.CharEnumField(default=Source.api, description='api: api\nweb: web\ntelegram: telegram\nemail: email', enum_type=Source, max_length=20),
        ),
        ops.AlterField(
            model_name='RequestMessage',
            name='source',
            field=fields.CharEnumField(default=Source.api, description='api: api\nweb: web\ntelegram: telegram\nemail: email', enum_type=Source, max_length=20),
        ),
    ]
