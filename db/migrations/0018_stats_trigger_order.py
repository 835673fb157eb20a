"""PostgreSQL only: the completions' and ratings' triggers (0017_stats_counters) are renamed
so that they fire after the status counters' trigger (0014_counts, `request_counts_row`).

A row's deferred triggers fire in the order of their names. `request_completions_*` sorted
before `request_counts_row`, so a transaction completing one request locked its quarter
hour's counter row and then `request_counts_version`, while a transaction changing several
requests held `request_counts_version` from its first row on and reached the same quarter
hour's row later (deleting a completed request, say). Each then waited for the other:
PostgreSQL aborted one of them as a deadlock. Named `request_stats_*`, they fire after
`request_counts_row`, which every write that changes a status or deletes a row fires: the
version row is always taken first, and the counter rows after it, in every transaction.
"""

from tortoise import migrations

from db.migrations._postgres import postgres_script

RENAMES = [
    (f"request_{kind}_{op}", f"request_stats_{kind}_{op}")
    for kind in ("completions", "ratings")
    for op in ("insert", "delete", "update")
]

FORWARDS = "\n".join(
    f"ALTER TRIGGER {old} ON customer_requests RENAME TO {new};" for old, new in RENAMES
)

BACKWARDS = "\n".join(
    f"ALTER TRIGGER {new} ON customer_requests RENAME TO {old};" for old, new in RENAMES
)


class Migration(migrations.Migration):
    dependencies = [("models", "0017_stats_counters")]

    operations = [postgres_script(FORWARDS, BACKWARDS)]
