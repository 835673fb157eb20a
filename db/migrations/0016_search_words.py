"""PostgreSQL only: a word index, so a selective search reads only its matches.

A search is `search_text LIKE '%q%'`. Through the trigram index of `customer_requests` a
12-letter word at a million rows costs 23-35 ms of database CPU: the bitmaps of its
trigrams (each common in Russian text), then a recheck of every candidate row, then, with
a filter, an AND with that filter's bitmap (docs/performance.md).

- `request_vocab` holds every distinct word any request's `search_text` ever had, with a
  trigram index; it is small (about 100,000 words at a million requests) and never shrinks
  (a word nobody uses any more matches no posting).
- `request_words` holds one posting per (word, request) with the request's list columns
  (created_at and the filters: status, priority, category, assignee), its primary key
  (word, status, request) covering them all, so a search's matches are an index-only scan
  of its words' postings (of one status's range when the search has a status filter).
- A word is a maximal run of characters other than ASCII white space (`TABS` and the space).
  A word longer than CHUNK characters is kept as overlapping pieces of CHUNK characters
  that start every STEP characters: any substring of it of at most STEP characters lies
  inside one piece. (A b-tree entry cannot be longer than about 2,700 bytes.)

So for a query of STEP characters or fewer with no separator, the requests whose
`search_text` contains it are exactly those with a posting for a vocabulary word that
contains it (core.pg_queries.word_search). A longer query or one with spaces looks up
one of its pieces the same way and rechecks the candidates with LIKE.

Row triggers keep the postings in the same statement as every insert, delete and change
of the text or a list column (referential actions too); a TRUNCATE empties both tables.
Vocabulary words are inserted in sorted order, so two requests adding the same new words
cannot deadlock. `request_words_rebuild()` rebuilds from scratch (bench.fill_pg after a
bulk load with the trigger disabled).
"""

from tortoise import migrations

from db.migrations._postgres import postgres_script

CHUNK = 128
STEP = 64
# Words are separated by ASCII white space (core.pg_queries.WORD_SEPARATORS): the space,
# and these, which are turned into spaces first: tab, line feed, vertical tab, form feed,
# carriage return.
TABS = "chr(9) || chr(10) || chr(11) || chr(12) || chr(13)"
SPACES = "'     '"
COLUMNS = "created_at, status, priority, category, assigned_admin_id"
# The postings' key: a search with a status (the usual staff filter) reads only its range.
KEY = "word, status, request_id"
INCLUDED = "created_at, priority, category, assigned_admin_id"

FORWARDS = f"""
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE IF NOT EXISTS request_vocab (word TEXT PRIMARY KEY);
CREATE INDEX IF NOT EXISTS request_vocab_trgm ON request_vocab USING gin (word gin_trgm_ops);

CREATE TABLE IF NOT EXISTS request_words (
    word TEXT NOT NULL,
    request_id INT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    status VARCHAR(20) NOT NULL,
    priority VARCHAR(20) NOT NULL,
    category VARCHAR(20) NOT NULL,
    assigned_admin_id INT,
    PRIMARY KEY ({KEY}) INCLUDE ({INCLUDED})
);

-- The distinct words of a search text, each at most {CHUNK} characters.
CREATE OR REPLACE FUNCTION request_words_of(t TEXT) RETURNS SETOF TEXT
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    WITH a AS (SELECT string_to_array(translate(t, {TABS}, {SPACES}), ' ') AS words)
    SELECT w FROM a, unnest(a.words) AS w WHERE w <> '' AND length(w) <= {CHUNK}
    UNION
    SELECT substr(w, s, {CHUNK}) FROM a, unnest(a.words) AS w,
        generate_series(1, length(w) - {STEP}, {STEP}) AS s
    WHERE length(w) > {CHUNK}
$$;

CREATE OR REPLACE FUNCTION request_words_row() RETURNS TRIGGER LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.id = NEW.id AND OLD.search_text = NEW.search_text THEN
        IF (OLD.created_at, OLD.status, OLD.priority, OLD.category, OLD.assigned_admin_id)
           IS NOT DISTINCT FROM
           (NEW.created_at, NEW.status, NEW.priority, NEW.category, NEW.assigned_admin_id) THEN
            RETURN NULL;
        END IF;
        UPDATE request_words SET created_at = NEW.created_at, status = NEW.status,
            priority = NEW.priority, category = NEW.category,
            assigned_admin_id = NEW.assigned_admin_id
        WHERE word = ANY (ARRAY(SELECT request_words_of(NEW.search_text)))
          AND status = OLD.status AND request_id = NEW.id;
        RETURN NULL;
    END IF;
    IF TG_OP <> 'INSERT' THEN
        DELETE FROM request_words
        WHERE word = ANY (ARRAY(SELECT request_words_of(OLD.search_text)))
          AND status = OLD.status AND request_id = OLD.id;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        WITH w AS MATERIALIZED (SELECT request_words_of(NEW.search_text) AS word),
        v AS (INSERT INTO request_vocab (word) SELECT word FROM w ORDER BY word
              ON CONFLICT DO NOTHING)
        INSERT INTO request_words (word, request_id, {COLUMNS})
        SELECT word, NEW.id, NEW.created_at, NEW.status, NEW.priority, NEW.category,
               NEW.assigned_admin_id
        FROM w;
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION request_words_truncate() RETURNS TRIGGER LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE request_words, request_vocab;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION request_words_rebuild() RETURNS VOID LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE request_words, request_vocab;
    ALTER TABLE request_words DROP CONSTRAINT request_words_pkey;
    INSERT INTO request_words (word, request_id, {COLUMNS})
    SELECT w, r.id, r.created_at, r.status, r.priority, r.category, r.assigned_admin_id
    FROM customer_requests r, request_words_of(r.search_text) AS w;
    ALTER TABLE request_words ADD PRIMARY KEY ({KEY}) INCLUDE ({INCLUDED});
    INSERT INTO request_vocab (word) SELECT DISTINCT word FROM request_words;
END
$$;

DROP TRIGGER IF EXISTS request_words_row ON customer_requests;
CREATE TRIGGER request_words_row
    AFTER INSERT OR DELETE OR UPDATE OF id, search_text, {COLUMNS} ON customer_requests
    FOR EACH ROW EXECUTE FUNCTION request_words_row();
DROP TRIGGER IF EXISTS request_words_truncate ON customer_requests;
CREATE TRIGGER request_words_truncate AFTER TRUNCATE ON customer_requests
    FOR EACH STATEMENT EXECUTE FUNCTION request_words_truncate();

LOCK TABLE customer_requests IN SHARE MODE;
SELECT request_words_rebuild();
"""

BACKWARDS = """
DROP TRIGGER IF EXISTS request_words_row ON customer_requests;
DROP TRIGGER IF EXISTS request_words_truncate ON customer_requests;
DROP FUNCTION IF EXISTS request_words_row();
DROP FUNCTION IF EXISTS request_words_truncate();
DROP FUNCTION IF EXISTS request_words_rebuild();
DROP FUNCTION IF EXISTS request_words_of(TEXT);
DROP TABLE IF EXISTS request_words;
DROP TABLE IF EXISTS request_vocab;
"""


class Migration(migrations.Migration):
    dependencies = [("models", "0015_counts_columns")]

    operations = [postgres_script(FORWARDS, BACKWARDS)]
