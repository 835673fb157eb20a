"""Scheduled work: stats digests, reminders and escalation, auto-close (APScheduler 3).

`scheduler.runtime` starts it, `scheduler.jobs` holds the jobs, `scheduler.lease` makes
each fire slot run once across processes, `scheduler.clock` keeps time controllable.
"""
