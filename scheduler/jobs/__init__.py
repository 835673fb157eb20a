"""The scheduler's jobs. Each takes `(settings, now, slot)` and is safe to run again.

- digest: the stats digest to the admin group (dedup key per fire slot).
- reminders: open requests nobody took within their priority's threshold are reminded in
  the admin group once, escalated to the directors by direct message at twice the
  threshold; an overdue estimated_resolution_time reminds the assignee. `ReminderLog`
  (unique request+kind) is written before sending, and only the insert that wins sends.
- auto_close: completed requests quiet for AUTO_CLOSE_DAYS move to closed.
- housekeeping: old fire-slot leases, events and delivered Telegram rows are deleted; the
  audit log after AUDIT_RETENTION_DAYS.

Jobs write to the Telegram delivery queue (telegram_delivery.outbox); the bot's sender delivers.

The package, by concern: `common` (JobSpec, queueing, limits), `digest`, `reminders`,
`auto_close`, `housekeeping`, and `specs` (the job list).
"""

from scheduler.jobs.auto_close import run_auto_close
from scheduler.jobs.common import (
    JobSpec,
    admin_chat_configured,
    bot_configured,
    send_text,
    take_buttons,
)
from scheduler.jobs.digest import queue_digest_chart, run_digest
from scheduler.jobs.housekeeping import run_housekeeping
from scheduler.jobs.reminders import run_reminders
from scheduler.jobs.specs import job_specs

__all__ = [
    "JobSpec",
    "admin_chat_configured",
    "bot_configured",
    "job_specs",
    "queue_digest_chart",
    "run_auto_close",
    "run_digest",
    "run_housekeeping",
    "run_reminders",
    "send_text",
    "take_buttons",
]
