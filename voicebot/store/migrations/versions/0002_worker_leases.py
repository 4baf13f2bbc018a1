"""Worker leases: which worker holds a call, and whether that worker is still alive.

``workers`` has one row per worker id, renewed by its heartbeat (``expires_at``);
``calls.worker_id`` says who holds a call. Recovery closes only the open calls
of workers whose lease has expired. ``calls.next_seq`` is the per-call event
counter the PostgreSQL store increments in the call's row (no ``MAX()+1``).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.Text().with_variant(postgresql.TIMESTAMP(timezone=True), "postgresql")


def upgrade() -> None:
    op.create_table(
        "workers",
        sa.Column("worker_id", sa.Text(), primary_key=True),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("heartbeat_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
    )
    op.add_column("calls", sa.Column("worker_id", sa.Text()))
    op.add_column("calls", sa.Column("next_seq", sa.Integer(), nullable=False, server_default=sa.text("0")))
    # The sweep for a dead worker's calls reads only open calls.
    open_only = sa.text("ended_at IS NULL")
    op.create_index("calls_open_worker", "calls", ["worker_id"], sqlite_where=open_only, postgresql_where=open_only)


def downgrade() -> None:
    op.drop_index("calls_open_worker", table_name="calls")
    with op.batch_alter_table("calls") as batch:  # SQLite drops columns by copying the table
        batch.drop_column("next_seq")
        batch.drop_column("worker_id")
    op.drop_table("workers")
