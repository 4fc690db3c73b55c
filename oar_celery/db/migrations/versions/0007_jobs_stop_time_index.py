"""ix_jobs_stop_time: the jobs that ended after a date (the Gantt's and the API's time windows)

Revision ID: 0007
Revises: 0004
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_jobs_stop_time", "jobs", ["stop_time"])


def downgrade() -> None:
    op.drop_index("ix_jobs_stop_time", table_name="jobs")
