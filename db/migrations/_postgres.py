"""The one step of the PostgreSQL-only migrations (0002, 0003, 0014-0018): an SQL script
forwards and one backwards, run on PostgreSQL and skipped on SQLite, whose installs have no
trigram search, counters or word index. (The loader skips modules whose name starts with
an underscore, so this is not a migration itself.)"""

from tortoise.migrations import operations as ops


def postgres_script(forwards_sql: str, backwards_sql: str) -> ops.RunPython:
    async def forwards(apps, schema_editor) -> None:
        client = schema_editor.client
        if client.capabilities.dialect == "postgres":
            await client.execute_script(forwards_sql)

    async def backwards(apps, schema_editor) -> None:
        client = schema_editor.client
        if client.capabilities.dialect == "postgres":
            await client.execute_script(backwards_sql)

    return ops.RunPython(forwards, backwards)
