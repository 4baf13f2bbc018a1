"""Baseline: calls, events, turns, intents, handoffs (the tables of schema.sql).

On PostgreSQL timestamps are timestamptz, JSON documents jsonb and ids identity
columns; on SQLite the same columns are ISO 8601 text, JSON text and rowids.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.Text().with_variant(postgresql.TIMESTAMP(timezone=True), "postgresql")
JSON = sa.Text().with_variant(postgresql.JSONB(), "postgresql")


def _id() -> sa.Column:
    # SQLite: INTEGER PRIMARY KEY (the rowid); PostgreSQL: BIGINT GENERATED ALWAYS AS IDENTITY.
    return sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), sa.Identity(always=True),
                     primary_key=True)


def _call_fk() -> sa.Column:
    return sa.Column("call_id", sa.Text(), sa.ForeignKey("calls.call_id"), nullable=False)


def upgrade() -> None:
    op.create_table(
        "calls",
        sa.Column("call_id", sa.Text(), primary_key=True),
        sa.Column("protocol", sa.Text(), nullable=False),
        sa.Column("caller", JSON, nullable=False, server_default=sa.text("'{}'")),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("ended_at", TS),
        sa.Column("status", sa.Text(), nullable=False, server_default=sa.text("'active'")),
        sa.Column("handled_by", sa.Text(), nullable=False, server_default=sa.text("'bot'")),
        sa.Column("agent_id", sa.Text()),
        sa.Column("first_intent", sa.Text()),
        sa.Column("last_intent", sa.Text()),
        sa.Column("route", sa.Text()),
        sa.Column("handoff", sa.Text()),
        sa.Column("turns", sa.Integer(), nullable=False, server_default=sa.text("0")),
    )
    op.create_index("calls_started_at", "calls", ["started_at"])
    op.create_table(
        "events", _id(), _call_fk(),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("ts", TS, nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("payload", JSON, nullable=False),
    )
    op.create_table(
        "turns", _id(), _call_fk(),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.Column("speaker", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("confidence", sa.Float()),
        sa.Column("start_s", sa.Float()),
        sa.Column("end_s", sa.Float()),
        sa.Column("ts", TS, nullable=False),
    )
    op.create_table(
        "intents", _id(), _call_fk(),
        sa.Column("turn_idx", sa.Integer()),
        sa.Column("label", sa.Text(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("alternatives", JSON, nullable=False, server_default=sa.text("'[]'")),
        sa.Column("slots", JSON, nullable=False, server_default=sa.text("'{}'")),
        sa.Column("ts", TS, nullable=False),
    )
    op.create_index("intents_call", "intents", ["call_id"])
    op.create_table(
        "handoffs", _id(), _call_fk(),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("context", JSON, nullable=False, server_default=sa.text("'{}'")),
        sa.Column("ts", TS, nullable=False),
    )
    op.create_index("handoffs_call", "handoffs", ["call_id"])
    # One seq / one turn index per call: a second writer of a call cannot merge into its record.
    op.create_index("events_call_seq", "events", ["call_id", "seq"], unique=True)
    op.create_index("turns_call_idx", "turns", ["call_id", "idx"], unique=True)


def downgrade() -> None:
    for table in ("handoffs", "intents", "turns", "events", "calls"):
        op.drop_table(table)
