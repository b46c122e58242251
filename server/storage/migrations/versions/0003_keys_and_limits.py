"""Named API keys managed at run time (``python -m server keys``) and the per-account limits shared by
every process: request counters per account and minute, and leased concurrency slots.

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

_TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("account_id", sa.String(32), nullable=False),
        sa.Column("created_at", _TIMESTAMP, nullable=False),
        sa.Column("last_used_at", _TIMESTAMP, nullable=True),
        sa.Column("revoked_at", _TIMESTAMP, nullable=True),
    )
    op.create_index("ix_api_keys_key_hash", "api_keys", ["key_hash"], unique=True)
    op.create_index("ix_api_keys_account_id", "api_keys", ["account_id"])
    op.create_table(
        "rate_windows",
        sa.Column("account_id", sa.String(32), primary_key=True),
        sa.Column("window", sa.BigInteger, primary_key=True),
        sa.Column("count", sa.Integer, nullable=False),
    )
    op.create_table(
        "account_slots",
        sa.Column("account_id", sa.String(32), primary_key=True),
        sa.Column("slot", sa.Integer, primary_key=True),
        sa.Column("holder", sa.String(64), nullable=True),
        sa.Column("process", sa.String(32), nullable=True),
        sa.Column("expires_at", sa.Float, nullable=True),
    )
    op.create_index("ix_account_slots_process", "account_slots", ["process"])


def downgrade() -> None:
    op.drop_index("ix_account_slots_process", "account_slots")
    op.drop_table("account_slots")
    op.drop_table("rate_windows")
    op.drop_index("ix_api_keys_account_id", "api_keys")
    op.drop_index("ix_api_keys_key_hash", "api_keys")
    op.drop_table("api_keys")
