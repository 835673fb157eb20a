"""PostgreSQL only: the counters' row trigger (migration 0014_counts) fires only for updates
of the columns it looks at.

It fired for every UPDATE of `customer_requests`, so every new message (which moves the
request's last_message_at and message counts) ran the trigger function at commit only for
it to find nothing to count. Now an UPDATE fires it only when it sets one of the columns
that the counters (status, priority, category, assignee) or `request_counts_version`
(those, the customer and the search text) depend on; inserts and deletes as before.
"""

from tortoise import migrations

from db.migrations._postgres import postgres_script

COLUMNS = "status, priority, category, assigned_admin_id, customer_id, search_text"

FORWARDS = f"""
DROP TRIGGER IF EXISTS request_counts_row ON customer_requests;
CREATE CONSTRAINT TRIGGER request_counts_row
    AFTER INSERT OR DELETE OR UPDATE OF {COLUMNS} ON customer_requests
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION request_counts_row();
"""

BACKWARDS = """
DROP TRIGGER IF EXISTS request_counts_row ON customer_requests;
CREATE CONSTRAINT TRIGGER request_counts_row
    AFTER INSERT OR UPDATE OR DELETE ON customer_requests
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION request_counts_row();
"""


class Migration(migrations.Migration):
    dependencies = [("models", "0014_counts")]

    operations = [postgres_script(FORWARDS, BACKWARDS)]
