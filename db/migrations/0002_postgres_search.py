"""PostgreSQL only: trigram index so `search` uses an index instead of scanning the table."""

from tortoise import migrations
from tortoise.migrations import operations as ops


async def forwards(apps, schema_editor) -> None:
    client = schema_editor.client
    if client.capabilities.dialect != "postgres":
        return
    await client.execute_script(
        "CREATE EXTENSION IF NOT EXISTS pg_trgm;"
        "CREATE INDEX IF NOT EXISTS customer_requests_search_trgm "
        "ON customer_requests USING gin (search_text gin_trgm_ops);"
    )


async def backwards(apps, schema_editor) -> None:
    client = schema_editor.client
    if client.capabilities.dialect != "postgres":
        return
    await client.execute_script("DROP INDEX IF EXISTS customer_requests_search_trgm;")


class Migration(migrations.Migration):
    dependencies = [("models", "0001_initial")]

    operations = [ops.RunPython(forwards, backwards)]
