"""Shared state for several service processes on one database: leases on jobs, callbacks and profile
builds (owner and expiry), the accounts' turns for fair job claiming, and the service's secrets (URL
signing secret, development key) that used to be files in one process's data directory.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_TIMESTAMP = sa.DateTime(timezone=True)
_LEASED = ("jobs", "job_callbacks", "profiles")


def upgrade() -> None:
    for table in _LEASED:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("lease_owner", sa.String(64)))
            batch.add_column(sa.Column("lease_expires_at", _TIMESTAMP))
    # A RUNNING job or an unfinished profile left by the release before leases has no lease: it is
    # free to claim at once, as that release's restart did.
    op.create_table(
        "job_turns",
        sa.Column("account_id", sa.String(32), sa.ForeignKey("accounts.id"), primary_key=True),
        sa.Column("last_claimed_at", _TIMESTAMP, nullable=False),
    )
    op.create_table(
        "service_secrets",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("created_at", _TIMESTAMP, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("service_secrets")
    op.drop_table("job_turns")
    for table in _LEASED:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("lease_expires_at")
            batch.drop_column("lease_owner")
