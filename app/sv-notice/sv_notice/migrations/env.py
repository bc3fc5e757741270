"""Alembic environment of sv-notice; the shared runner does the work."""

from sqlalchemy import MetaData

from edgelib.migrations import run_env

run_env(MetaData())
