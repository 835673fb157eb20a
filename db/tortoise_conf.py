"""Config for the `tortoise` CLI (makemigrations, history): `tortoise -c db.tortoise_conf.TORTOISE_ORM ...`."""

import os

from db.setup import tortoise_config

TORTOISE_ORM = tortoise_config(os.environ.get("DATABASE_URL", "sqlite://data/helpdesk.sqlite3"))
