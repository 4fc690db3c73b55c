"""ix_jobs_reservations: the advance reservations, which every cycle looks for among the waiting jobs

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

RESERVATIONS = sa.text("reservation <> 'None'")


def upgrade() -> None:
    op.create_index(
        "ix_jobs_reservations", "jobs", ["reservation", "state"],
        postgresql_where=RESERVATIONS, sqlite_where=RESERVATIONS,
    )


def downgrade() -> None:
    op.drop_index("ix_jobs_reservations", table_name="jobs")
