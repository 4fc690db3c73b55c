"""ix_jobs_waiting: each queue's waiting jobs in submission order, for the quick round

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

WAITING = sa.text("state = 'Waiting'")


def upgrade() -> None:
    op.create_index(
        "ix_jobs_waiting", "jobs", ["queue_name", "submission_time", "job_id"],
        postgresql_where=WAITING, sqlite_where=WAITING,
    )


def downgrade() -> None:
    op.drop_index("ix_jobs_waiting", table_name="jobs")
