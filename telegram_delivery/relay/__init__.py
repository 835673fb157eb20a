"""The relay: a durable consumer of the event log (db.models.Event) that turns domain events
into Telegram messages in the delivery queue (telegram_delivery.outbox).

- Position: a `Cursor` row ("telegram-relay"). Events are read in id order. Because ids are
  assigned at INSERT while transactions commit in any order (PostgreSQL), each pass also
  re-reads events created in the last `rescan_seconds` that it has not handled yet, so an
  event committed late behind a higher id is never skipped.
- Idempotent: every queued call has a dedup key derived from the event
  (`ev:<event_id>:<purpose>`) or from the request (`new:<id>:card`, `thread:<id>:card`), so
  a re-read (after a crash, in the re-scan window, or by a second relay) queues nothing twice.
- Wake-up: `core.events.committed()` in this process wakes it; otherwise it polls every
  `poll_interval` seconds (changes made by the API in another process).
- Poisoned events: an event whose handling raises (anything but an outage of the database,
  which backs the whole loop off through `core.backoff.LoopHealth`) is tried again after
  `retry_base`, 2x, 4x... seconds while later events go on; after POISON_MAX_ATTEMPTS
  (default 3) failures it is parked: a `ParkedEvent` row with its error, one WARNING log
  line, `Relay.parked` counted, and an internal system note on its request. The cursor then
  moves past it and a restart does not replay it; `helpdesk parked --retry event:ID` asks
  for one more try. Failure counts are stored, so they survive a restart.

What goes where:
- new_request     -> card in TELEGRAM_ADMIN_CHAT_ID (in its own forum topic on a forum); in
                     a burst the sender folds it into a summary with a Take button
- request_updated -> the card and the summary listing the request are edited (rendered from
                     the database at send time, so a burst of edits collapses into the
                     newest); its forum topic is renamed with the status and closed on
                     complete/close, reopened on reopen; a request taken without a card
                     (from a summary) gets its card and topic now; the customer hears when
                     the request is taken, completed or closed (in their language)
- new_message     -> customer's message to the request's thread in the admin group; staff
                     reply to the customer's private chat (and, when written outside
                     Telegram, to the thread too); internal notes never reach the customer;
                     nothing is echoed back into the chat it came from
- chat_message    -> the Telegram group bound to the AdminChat (unless it came from Telegram)
- message_updated -> every Telegram copy of the message is edited in place (each part,
                     captions too); message_deleted -> every copy is deleted
                     (core.message_edits; links: TelegramMessageLink.kind/part)

The package, by concern: `consumer` (the loop, the cursor, retries and parking; `Relay`),
`requests` (cards, summaries, topics, customer notices), `messages` (thread and chat
messages), `edits` (edits and deletions of copies), `base` (what they share).
"""

from telegram_delivery.relay.consumer import CURSOR_NAME, TYPES, Relay

__all__ = ["CURSOR_NAME", "TYPES", "Relay"]
