"""PostgreSQL only: composite indexes for the admin list's common filter pairs.

The single-column (status|priority|category, created_at) indexes from 0001 serve one filter
each. With two filters (status + priority, status + category) PostgreSQL either ANDs two
bitmaps and sorts, or walks one index and throws most rows away; at 100,000 requests a
deep page of such a list cost 10-25 ms. With these, both the capped count and the page
(ORDER BY created_at DESC, id DESC, OFFSET) read only matching index entries. See
docs/performance.md.

Built without CONCURRENTLY (migrations run in a transaction): on a very large table,
create them by hand with CREATE INDEX CONCURRENTLY first; IF NOT EXISTS then skips them.
"""

from tortoise import migrations
from tortoise.migrations import operations as ops

INDEXES = {
    "customer_requests_status_priority_created": "(status, priority, created_at, id)",
    "customer_requests_status_category_created": "(status, category, created_at, id)",
}


async def forwards(apps, schema_editor) -> None:
    client = schema_editor.client
    if client.capabilities.dialect != "postgres":
        return
    await client.execute_script(
        "".join(
            f"CREATE INDEX IF NOT EXISTS {name} ON customer_requests {columns};"
            for name, columns in INDEXES.items()
        )
    )


async def backwards(apps, schema_editor) -> None:
    client = schema_editor.client
    if client.capabilities.dialect != "postgres":
        return
    await client.execute_script("".join(f"DROP INDEX IF EXISTS {name};" for name in INDEXES))


class Migration(migrations.Migration):
    dependencies = [("models", "0002_postgres_search")]

    operations = [ops.RunPython(forwards, backwards)]
