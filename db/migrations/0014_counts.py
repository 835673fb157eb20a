"""PostgreSQL only: exact list counts from counters kept by triggers.

`request_counts` holds one row per (status, priority, category, assignee; 0 for none) with
the number of requests in it. A row trigger on `customer_requests` adjusts it for every
insert, delete and change of those four columns (referential actions too: a deleted
admin's requests are SET NULL by an UPDATE, a deleted customer's CASCADE by a DELETE), and
a TRUNCATE empties it, so no write path can forget it. The trigger is a deferred
constraint trigger: it runs at commit, inside the transaction, so the counters change
exactly when the rows become visible and a hot counter row is locked only for the commit,
not for the whole transaction. When one change touches two counter rows the lower key is
locked first, so two opposite moves cannot deadlock.

A list count without search or customer filter is then a sum over at most a few hundred
rows (core.pg_queries.count), exact at any table size, instead of COUNT(*) over every
match (4-12 ms at 100,000 rows, ten times that at 1,000,000). See docs/performance.md.
A search's count is COUNT(*) over its matches; `request_counts_version` is bumped with
every change that can change what any filter or search matches (a new message does not),
so core.pg_queries keeps a broad search's count with the version it was read at and
reuses it, exact, until the next such change.
`request_counts_rebuild()` recounts from scratch (bench.fill_pg calls it after a bulk
load with the trigger disabled).
"""

from tortoise import migrations

from db.migrations._postgres import postgres_script

KEY = "status, priority, category, assignee_id"

FORWARDS = f"""
CREATE TABLE IF NOT EXISTS request_counts (
    status VARCHAR(20) NOT NULL,
    priority VARCHAR(20) NOT NULL,
    category VARCHAR(20) NOT NULL,
    assignee_id INT NOT NULL,
    n BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY ({KEY})
);

-- One row: bumped by every change that can change which requests a filter or a search
-- matches (not by a new message), so a count cached with its version is exact.
CREATE TABLE IF NOT EXISTS request_counts_version (
    one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
    v BIGINT NOT NULL
);
INSERT INTO request_counts_version (one, v) VALUES (TRUE, 1) ON CONFLICT DO NOTHING;

CREATE OR REPLACE FUNCTION request_counts_bump(s TEXT, p TEXT, c TEXT, a INT, d INT)
RETURNS VOID LANGUAGE sql AS $$
    INSERT INTO request_counts AS rc ({KEY}, n) VALUES (s, p, c, COALESCE(a, 0), d)
    ON CONFLICT ({KEY}) DO UPDATE SET n = rc.n + EXCLUDED.n
$$;

CREATE OR REPLACE FUNCTION request_counts_row() RETURNS TRIGGER LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'UPDATE' OR (OLD.status, OLD.priority, OLD.category, OLD.assigned_admin_id,
                              OLD.customer_id, OLD.search_text)
            IS DISTINCT FROM (NEW.status, NEW.priority, NEW.category, NEW.assigned_admin_id,
                              NEW.customer_id, NEW.search_text) THEN
        UPDATE request_counts_version SET v = v + 1;
    END IF;
    IF TG_OP = 'INSERT' THEN
        PERFORM request_counts_bump(NEW.status, NEW.priority, NEW.category, NEW.assigned_admin_id, 1);
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM request_counts_bump(OLD.status, OLD.priority, OLD.category, OLD.assigned_admin_id, -1);
    ELSIF (OLD.status, OLD.priority, OLD.category, COALESCE(OLD.assigned_admin_id, 0))
          IS DISTINCT FROM (NEW.status, NEW.priority, NEW.category, COALESCE(NEW.assigned_admin_id, 0)) THEN
        IF (OLD.status, OLD.priority, OLD.category, COALESCE(OLD.assigned_admin_id, 0))
           < (NEW.status, NEW.priority, NEW.category, COALESCE(NEW.assigned_admin_id, 0)) THEN
            PERFORM request_counts_bump(OLD.status, OLD.priority, OLD.category, OLD.assigned_admin_id, -1);
            PERFORM request_counts_bump(NEW.status, NEW.priority, NEW.category, NEW.assigned_admin_id, 1);
        ELSE
            PERFORM request_counts_bump(NEW.status, NEW.priority, NEW.category, NEW.assigned_admin_id, 1);
            PERFORM request_counts_bump(OLD.status, OLD.priority, OLD.category, OLD.assigned_admin_id, -1);
        END IF;
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION request_counts_truncate() RETURNS TRIGGER LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM request_counts;
    UPDATE request_counts_version SET v = v + 1;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION request_counts_rebuild() RETURNS VOID LANGUAGE sql AS $$
    DELETE FROM request_counts;
    INSERT INTO request_counts ({KEY}, n)
    SELECT status, priority, category, COALESCE(assigned_admin_id, 0), COUNT(*)
    FROM customer_requests GROUP BY 1, 2, 3, 4;
$$;

DROP TRIGGER IF EXISTS request_counts_row ON customer_requests;
CREATE CONSTRAINT TRIGGER request_counts_row
    AFTER INSERT OR UPDATE OR DELETE ON customer_requests
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION request_counts_row();
DROP TRIGGER IF EXISTS request_counts_truncate ON customer_requests;
CREATE TRIGGER request_counts_truncate AFTER TRUNCATE ON customer_requests
    FOR EACH STATEMENT EXECUTE FUNCTION request_counts_truncate();

LOCK TABLE customer_requests IN SHARE MODE;
SELECT request_counts_rebuild();
"""

BACKWARDS = """
DROP TRIGGER IF EXISTS request_counts_row ON customer_requests;
DROP TRIGGER IF EXISTS request_counts_truncate ON customer_requests;
DROP FUNCTION IF EXISTS request_counts_row();
DROP FUNCTION IF EXISTS request_counts_truncate();
DROP FUNCTION IF EXISTS request_counts_rebuild();
DROP FUNCTION IF EXISTS request_counts_bump(TEXT, TEXT, TEXT, INT, INT);
DROP TABLE IF EXISTS request_counts;
DROP TABLE IF EXISTS request_counts_version;
"""


class Migration(migrations.Migration):
    dependencies = [("models", "0013_i18n")]

    operations = [postgres_script(FORWARDS, BACKWARDS)]
