"""jobs' pages keep 30 % free on PostgreSQL: the scheduler's messages and times are rewritten in place

Revision ID: 0009
Revises: 0008

A scheduling round that holds thousands of jobs back (quotas, a full cluster)
writes each one's ``scheduler_info``. With full pages every such ``UPDATE``
puts the new row version on another page and adds an entry to every index
of ``jobs``; with room left on the page PostgreSQL keeps it there and leaves
the indexes alone (a heap-only tuple), since no indexed column changes. Rows
written before this migration get the room as their pages are rewritten.
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE jobs SET (fillfactor = 70)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE jobs RESET (fillfactor)")
