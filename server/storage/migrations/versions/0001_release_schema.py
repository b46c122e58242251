"""The schema of the first release, as ``Base.metadata.create_all`` made it (no alembic_version table):
such a database is stamped with this revision at start, then upgraded.

Revision ID: 0001
Revises: (none)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("created_at", _TIMESTAMP, nullable=False),
    )
    op.create_index("ix_accounts_key_hash", "accounts", ["key_hash"], unique=True)
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("account_id", sa.String(32), sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("client_request_key", sa.String(64)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("options", sa.JSON, nullable=False),
        sa.Column("submitted_on", sa.Date, nullable=False),
        sa.Column("base_url", sa.Text, nullable=False),
        sa.Column("callback_url", sa.Text),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("result", sa.JSON),
        sa.Column("error_code", sa.String(32)),
        sa.Column("error_detail", sa.Text),
        sa.Column("created_at", _TIMESTAMP, nullable=False),
        sa.Column("started_at", _TIMESTAMP),
        sa.Column("completed_at", _TIMESTAMP),
        sa.Column("expires_at", _TIMESTAMP),
        sa.UniqueConstraint("account_id", "client_request_key", name="uq_jobs_account_client_request"),
    )
    for column in ("created_at", "status", "expires_at", "account_id"):
        op.create_index(f"ix_jobs_{column}", "jobs", [column])
    op.create_table(
        "profiles",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("account_id", sa.String(32), sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("tag", sa.String(128)),
        sa.Column("training_tier", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("message", sa.Text),
        sa.Column("reference_count", sa.Integer, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("embeddings", sa.LargeBinary),
        sa.Column("picture", sa.LargeBinary),
        sa.Column("created_at", _TIMESTAMP, nullable=False),
        sa.Column("updated_at", _TIMESTAMP, nullable=False),
    )
    for column in ("tag", "account_id", "created_at", "status"):
        op.create_index(f"ix_profiles_{column}", "profiles", [column])
    op.create_table(
        "webhook_secrets",
        sa.Column("account_id", sa.String(32), sa.ForeignKey("accounts.id"), primary_key=True),
        sa.Column("secret", sa.String(128), nullable=False),
        sa.Column("created_at", _TIMESTAMP, nullable=False),
    )
    op.create_table(
        "job_callbacks",
        sa.Column("job_id", sa.String(40), sa.ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", _TIMESTAMP, nullable=False),
        sa.Column("last_error", sa.Text),
        sa.Column("delivered_at", _TIMESTAMP),
    )
    op.create_index("ix_job_callbacks_next_attempt_at", "job_callbacks", ["next_attempt_at"])
    op.create_index("ix_job_callbacks_status", "job_callbacks", ["status"])


def downgrade() -> None:
    for table in ("job_callbacks", "webhook_secrets", "profiles", "jobs", "accounts"):
        op.drop_table(table)
