from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0004_event_claim_lease')]

    initial = False

    operations = [
        ops.CreateModel(
            name='ParkedEvent',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('consumer', fields.CharField(max_length=64)),
                ('event_id', fields.BigIntField()),
                ('event_type', fields.CharField(max_length=40)),
                ('request_id', fields.IntField(null=True)),
                ('status', fields.CharField(default='failing', max_length=12)),
                ('attempts', fields.IntField(default=0)),
                ('error', fields.TextField(unique=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'parked_events', 'app': 'models', 'unique_together': (('consumer', 'event_id'),), 'indexes': [Index(fields=['consumer', 'status'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
    ]
