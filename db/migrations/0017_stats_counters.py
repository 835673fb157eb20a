"""PostgreSQL only: the stats' last two scans become counters, so the desk's stats read a
few dozen counter rows at any table size.

- **Completed today.** The stats count the requests that are completed and whose status
  changed since local midnight (core.queries.stats). Over the (status, status_changed_at)
  index that is a range of every such request: 8,241 entries, 6-10 ms of database CPU, at
  a million requests (docs/performance.md). `request_completions` holds, per quarter hour
  (`bucket`, where it begins), how many requests are completed with `status_changed_at` in
  it. Every zone's offset from UTC is a whole number of quarter hours, so local midnight
  starts a bucket and today's completions are the buckets from it on (at most 96); a start
  that is not a bucket's start adds a COUNT(*) over less than a quarter hour
  (core.pg_queries.completed_since_sql).
- **Ratings.** `csat_responses` and `csat_average` were a count and a sum over every rated
  request (an index-only scan of the rating index, which grows with every rating).
  `request_ratings` holds how many requests have each score.

Deferred constraint triggers keep both at commit, as the status counters (0014): fired only
for a row that is or was completed, or is or was rated (their WHEN clauses: a new request,
a message, any other update costs no function call), for inserts, deletes, and updates of
status, status_changed_at or rating (referential actions too); a TRUNCATE empties both.
When one update moves a count between two counter rows, the lower row is locked first, so
two opposite moves cannot deadlock. `request_stats_rebuild()` recounts both from scratch
(bench.fill_pg calls it after a bulk load with the triggers disabled).
"""

from tortoise import migrations

from db.migrations._postgres import postgres_script

FORWARDS = """
CREATE TABLE IF NOT EXISTS request_completions (
    bucket TIMESTAMPTZ PRIMARY KEY,
    n BIGINT NOT NULL DEFAULT 0
);

-- Where the quarter hour holding `t` begins.
CREATE OR REPLACE FUNCTION request_completion_bucket(t TIMESTAMPTZ)
RETURNS TIMESTAMPTZ LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT to_timestamp(floor(extract(epoch FROM t) / 900) * 900)
$$;

CREATE OR REPLACE FUNCTION request_completions_bump(t TIMESTAMPTZ, d INT)
RETURNS VOID LANGUAGE sql AS $$
    INSERT INTO request_completions AS rc (bucket, n)
    VALUES (request_completion_bucket(t), d)
    ON CONFLICT (bucket) DO UPDATE SET n = rc.n + EXCLUDED.n
$$;

CREATE OR REPLACE FUNCTION request_completions_row() RETURNS TRIGGER LANGUAGE plpgsql AS $$
DECLARE
    was TIMESTAMPTZ;
    now_at TIMESTAMPTZ;
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.status = 'completed' THEN
        was := COALESCE(OLD.status_changed_at, '-infinity');
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') AND NEW.status = 'completed' THEN
        now_at := COALESCE(NEW.status_changed_at, '-infinity');
    END IF;
    IF was IS NOT NULL AND now_at IS NOT NULL
       AND request_completion_bucket(was) = request_completion_bucket(now_at) THEN
        RETURN NULL;
    END IF;
    IF was IS NOT NULL AND (now_at IS NULL OR was < now_at) THEN
        PERFORM request_completions_bump(was, -1);
        was := NULL;
    END IF;
    IF now_at IS NOT NULL THEN
        PERFORM request_completions_bump(now_at, 1);
    END IF;
    IF was IS NOT NULL THEN
        PERFORM request_completions_bump(was, -1);
    END IF;
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS request_completions_insert ON customer_requests;
CREATE CONSTRAINT TRIGGER request_completions_insert
    AFTER INSERT ON customer_requests
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW WHEN (NEW.status = 'completed')
    EXECUTE FUNCTION request_completions_row();
DROP TRIGGER IF EXISTS request_completions_delete ON customer_requests;
CREATE CONSTRAINT TRIGGER request_completions_delete
    AFTER DELETE ON customer_requests
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW WHEN (OLD.status = 'completed')
    EXECUTE FUNCTION request_completions_row();
DROP TRIGGER IF EXISTS request_completions_update ON customer_requests;
CREATE CONSTRAINT TRIGGER request_completions_update
    AFTER UPDATE OF status, status_changed_at ON customer_requests
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW WHEN ((OLD.status = 'completed' OR NEW.status = 'completed')
        AND (OLD.status, OLD.status_changed_at) IS DISTINCT FROM (NEW.status, NEW.status_changed_at))
    EXECUTE FUNCTION request_completions_row();

CREATE TABLE IF NOT EXISTS request_ratings (
    rating SMALLINT PRIMARY KEY,
    n BIGINT NOT NULL DEFAULT 0
);

CREATE OR REPLACE FUNCTION request_ratings_bump(r SMALLINT, d INT)
RETURNS VOID LANGUAGE sql AS $$
    INSERT INTO request_ratings AS rr (rating, n) VALUES (r, d)
    ON CONFLICT (rating) DO UPDATE SET n = rr.n + EXCLUDED.n
$$;

CREATE OR REPLACE FUNCTION request_ratings_row() RETURNS TRIGGER LANGUAGE plpgsql AS $$
DECLARE
    was SMALLINT;
    now_is SMALLINT;
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        was := OLD.rating;
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        now_is := NEW.rating;
    END IF;
    IF was IS NOT NULL AND (now_is IS NULL OR was < now_is) THEN
        PERFORM request_ratings_bump(was, -1);
        was := NULL;
    END IF;
    IF now_is IS NOT NULL THEN
        PERFORM request_ratings_bump(now_is, 1);
    END IF;
    IF was IS NOT NULL THEN
        PERFORM request_ratings_bump(was, -1);
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION request_stats_truncate() RETURNS TRIGGER LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM request_completions;
    DELETE FROM request_ratings;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION request_stats_rebuild() RETURNS VOID LANGUAGE sql AS $$
    DELETE FROM request_completions;
    INSERT INTO request_completions (bucket, n)
    SELECT request_completion_bucket(COALESCE(status_changed_at, '-infinity')), COUNT(*)
    FROM customer_requests WHERE status = 'completed' GROUP BY 1;
    DELETE FROM request_ratings;
    INSERT INTO request_ratings (rating, n)
    SELECT rating, COUNT(*) FROM customer_requests WHERE rating IS NOT NULL GROUP BY 1;
$$;

DROP TRIGGER IF EXISTS request_ratings_insert ON customer_requests;
CREATE CONSTRAINT TRIGGER request_ratings_insert
    AFTER INSERT ON customer_requests
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW WHEN (NEW.rating IS NOT NULL)
    EXECUTE FUNCTION request_ratings_row();
DROP TRIGGER IF EXISTS request_ratings_delete ON customer_requests;
CREATE CONSTRAINT TRIGGER request_ratings_delete
    AFTER DELETE ON customer_requests
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW WHEN (OLD.rating IS NOT NULL)
    EXECUTE FUNCTION request_ratings_row();
DROP TRIGGER IF EXISTS request_ratings_update ON customer_requests;
CREATE CONSTRAINT TRIGGER request_ratings_update
    AFTER UPDATE OF rating ON customer_requests
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW WHEN (OLD.rating IS DISTINCT FROM NEW.rating)
    EXECUTE FUNCTION request_ratings_row();
DROP TRIGGER IF EXISTS request_stats_truncate ON customer_requests;
CREATE TRIGGER request_stats_truncate AFTER TRUNCATE ON customer_requests
    FOR EACH STATEMENT EXECUTE FUNCTION request_stats_truncate();

LOCK TABLE customer_requests IN SHARE MODE;
SELECT request_stats_rebuild();
"""

BACKWARDS = """
DROP TRIGGER IF EXISTS request_completions_insert ON customer_requests;
DROP TRIGGER IF EXISTS request_completions_delete ON customer_requests;
DROP TRIGGER IF EXISTS request_completions_update ON customer_requests;
DROP TRIGGER IF EXISTS request_ratings_insert ON customer_requests;
DROP TRIGGER IF EXISTS request_ratings_delete ON customer_requests;
DROP TRIGGER IF EXISTS request_ratings_update ON customer_requests;
DROP TRIGGER IF EXISTS request_stats_truncate ON customer_requests;
DROP FUNCTION IF EXISTS request_completions_row();
DROP FUNCTION IF EXISTS request_ratings_row();
DROP FUNCTION IF EXISTS request_stats_truncate();
DROP FUNCTION IF EXISTS request_stats_rebuild();
DROP FUNCTION IF EXISTS request_completions_bump(TIMESTAMPTZ, INT);
DROP FUNCTION IF EXISTS request_ratings_bump(SMALLINT, INT);
DROP FUNCTION IF EXISTS request_completion_bucket(TIMESTAMPTZ);
DROP TABLE IF EXISTS request_completions;
DROP TABLE IF EXISTS request_ratings;
"""


class Migration(migrations.Migration):
    dependencies = [("models", "0016_search_words")]

    operations = [postgres_script(FORWARDS, BACKWARDS)]
