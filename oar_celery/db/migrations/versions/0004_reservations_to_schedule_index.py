"""ix_jobs_reservations_to_schedule: the reservations waiting for an answer, for the quick round

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TO_SCHEDULE = sa.text("state = 'Waiting' AND reservation = 'toSchedule'")


def upgrade() -> None:
    op.create_index(
        "ix_jobs_reservations_to_schedule", "jobs", ["job_id"],
        postgresql_where=TO_SCHEDULE, sqlite_where=TO_SCHEDULE,
    )


def downgrade() -> None:
    op.drop_index("ix_jobs_reservations_to_schedule", table_name="jobs")
