"""PostgreSQL only: trigram index so `search` uses an index instead of scanning the table."""

from tortoise import migrations

from db.migrations._postgres import postgres_script

FORWARDS = (
    "CREATE EXTENSION IF NOT EXISTS pg_trgm;"
    "CREATE INDEX IF NOT EXISTS customer_requests_search_trgm "
    "ON customer_requests USING gin (search_text gin_trgm_ops);"
)
BACKWARDS = "DROP INDEX IF EXISTS customer_requests_search_trgm;"


class Migration(migrations.Migration):
    dependencies = [("models", "0001_initial")]

    operations = [postgres_script(FORWARDS, BACKWARDS)]
