"""accounting, jobs.accounted, jobs.last_karma and walltime_change: OAR's usage windows and walltime change requests

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "accounting",
        sa.Column("window_start", sa.BigInteger(), nullable=False),
        sa.Column("window_stop", sa.BigInteger(), nullable=False),
        sa.Column("accounting_user", sa.String(length=255), nullable=False),
        sa.Column("accounting_project", sa.String(length=255), nullable=False),
        sa.Column("queue_name", sa.String(length=100), nullable=False),
        sa.Column("consumption_type", sa.String(length=5), nullable=False),
        sa.Column("consumption", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "window_start", "window_stop", "accounting_user", "accounting_project", "queue_name", "consumption_type"
        ),
    )
    op.create_index("ix_accounting_window_stop", "accounting", ["window_stop"])
    op.add_column("jobs", sa.Column("accounted", sa.String(length=3), nullable=False, server_default="NO"))
    op.add_column("jobs", sa.Column("last_karma", sa.Float(), nullable=True))
    op.create_table(
        "walltime_change",
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("pending", sa.Integer(), nullable=False),
        sa.Column("force", sa.String(length=3), nullable=False),
        sa.Column("delay_next_jobs", sa.String(length=3), nullable=False),
        sa.Column("granted", sa.Integer(), nullable=False),
        sa.Column("granted_with_force", sa.Integer(), nullable=False),
        sa.Column("granted_with_delay_next_jobs", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("job_id"),
    )


def downgrade() -> None:
    op.drop_table("walltime_change")
    op.drop_column("jobs", "last_karma")
    op.drop_column("jobs", "accounted")
    op.drop_index("ix_accounting_window_stop", table_name="accounting")
    op.drop_table("accounting")
