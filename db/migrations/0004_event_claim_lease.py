from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0003_postgres_list_indexes')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Event',
            name='claimed_until',
            field=fields.DatetimeField(null=True, db_index=True, auto_now=False, auto_now_add=False),
        ),
    ]
