"""Staff console sessions (api/console): one row per signed-in browser, keyed by the digest
of its cookie."""

from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0007_integrations')]

    initial = False

    operations = [
        ops.CreateModel(
            name='ConsoleSession',
            fields=[
                ('digest', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=64)),
                ('user', fields.ForeignKeyField('models.User', source_field='user_id', db_constraint=True, to_field='id', related_name='console_sessions', on_delete=OnDelete.CASCADE)),
                ('csrf_token', fields.CharField(max_length=64)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('last_seen_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
                ('client_address', fields.CharField(default='', max_length=64)),
                ('flash', fields.TextField(null=True, unique=False)),
            ],
            options={'table': 'console_sessions', 'app': 'models', 'pk_attr': 'digest'},
            bases=['Model'],
        ),
    ]
