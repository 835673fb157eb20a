"""Identity and access (SPEC part 2).

- API tokens are kept as SHA-256 digests, several per user (`auth_tokens`). Every existing
  plaintext token is converted to its digest before `api_tokens` is dropped, so each
  deployed client keeps working with the key it holds.
- Login throttling counts attempts per username and per client address in fixed windows
  (`login_attempts`); the old per-username back-off table goes (its rows are transient).
- Users: `is_web_contact` (a web form's address, not an account), `email_verified`, and a
  ban (`banned_at`, `banned_by_id`). Existing customers that only ever wrote through the
  web form (no password, no Telegram, no token) become web contacts; addresses of
  accounts with a password were typed in by an operator and count as verified.
- Requests: `public_messages_count`, the thread's length as the customer sees it.
"""

import hashlib

from tortoise import fields, migrations
from tortoise.fields.base import OnDelete
from tortoise.migrations import operations as ops


async def hash_existing_tokens(apps, schema_editor) -> None:
    client = schema_editor.client
    _, rows = await client.execute_query('SELECT "key", "user_id", "created" FROM "api_tokens"')
    postgres = client.capabilities.dialect == "postgres"
    insert = (
        'INSERT INTO "auth_tokens" ("digest", "user_id", "created", "origin") '
        + ("VALUES ($1, $2, $3, 'migrated')" if postgres else "VALUES (?, ?, ?, 'migrated')")
    )
    for row in rows:
        key, user_id, created = row["key"], row["user_id"], row["created"]
        digest = hashlib.sha256(str(key).encode()).hexdigest()
        await client.execute_query(insert, [digest, user_id, created])


async def forget_tokens(apps, schema_editor) -> None:
    # Going back: the plaintext keys cannot be recovered from their digests.
    await schema_editor.client.execute_query('DELETE FROM "auth_tokens"')


async def fill_identity_columns(apps, schema_editor) -> None:
    client = schema_editor.client
    await client.execute_script(
        'UPDATE "customer_requests" SET "public_messages_count" = ('
        'SELECT COUNT(*) FROM "request_messages" m '
        'WHERE m."request_id" = "customer_requests"."id" AND NOT m."is_internal");'
        'UPDATE "users" SET "email_verified" = TRUE WHERE "email" <> \'\' AND "password" <> \'\';'
        'UPDATE "users" SET "is_web_contact" = TRUE WHERE "role" = \'customer\' '
        'AND "password" = \'\' AND "telegram_id" IS NULL AND "email" <> \'\' '
        'AND NOT EXISTS (SELECT 1 FROM "auth_tokens" t WHERE t."user_id" = "users"."id") '
        'AND EXISTS (SELECT 1 FROM "customer_requests" r WHERE r."customer_id" = "users"."id" '
        'AND r."source" = \'web\') '
        'AND NOT EXISTS (SELECT 1 FROM "customer_requests" r WHERE r."customer_id" = "users"."id" '
        'AND r."source" <> \'web\');'
    )


async def nothing(apps, schema_editor) -> None:
    return None


class Migration(migrations.Migration):
    dependencies = [('models', '0008_console')]

    initial = False

    operations = [
        ops.CreateModel(
            name='AuthToken',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('digest', fields.CharField(unique=True, max_length=64)),
                ('user', fields.ForeignKeyField('models.User', source_field='user_id', db_constraint=True, to_field='id', related_name='auth_tokens', on_delete=OnDelete.CASCADE)),
                ('created', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('origin', fields.CharField(default='login', max_length=16)),
            ],
            options={'table': 'auth_tokens', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.RunPython(hash_existing_tokens, forget_tokens),
        ops.CreateModel(
            name='LoginAttempt',
            fields=[
                ('key', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=200)),
                ('failures', fields.IntField(default=0)),
                ('window_start', fields.FloatField()),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'login_attempts', 'app': 'models', 'pk_attr': 'key'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='CustomerRequest',
            name='public_messages_count',
            field=fields.IntField(default=0, db_default=0),
        ),
        ops.AddField(
            model_name='User',
            name='banned_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='User',
            name='banned_by_id',
            field=fields.IntField(null=True),
        ),
        ops.AddField(
            model_name='User',
            name='email_verified',
            field=fields.BooleanField(default=False, db_default=False),
        ),
        ops.AddField(
            model_name='User',
            name='is_web_contact',
            field=fields.BooleanField(default=False, db_default=False),
        ),
        ops.RunPython(fill_identity_columns, nothing),
        ops.DeleteModel(name='ApiToken'),
        ops.DeleteModel(name='LoginFailure'),
    ]
