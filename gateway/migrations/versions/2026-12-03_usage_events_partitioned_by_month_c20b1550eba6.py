"""usage_events range-partitioned by month on Postgres (rows kept); SQLite: nothing changes

Revision ID: c20b1550eba6
Revises: 7e3a9b1c5d20
Create Date: 2026-12-03 16:45:00

Postgres only. The old table is copied into a new partitioned parent with the same columns (and
the same ``id`` sequence): one partition per month that holds rows, plus the current month and
the next two, plus a DEFAULT partition, so an insert never fails. A partitioned table's unique
constraints must hold the partition key: the primary key becomes (id, created_at) and the
request-id uniqueness (request_id, created_at) — a replayed record carries its original
``created_at``, so ``ON CONFLICT`` still ignores it. Indexes are built after the copy (faster).
The gateway creates later months ahead (``gateway/metering/partitions.py``).

Downgrade copies the rows back into one plain table (keeping the earliest row of a request id).
Self-contained on purpose: a migration must not change when the gateway's code does.
"""

from collections.abc import Sequence
from datetime import UTC, date, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "c20b1550eba6"
down_revision: str | None = "7e3a9b1c5d20"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

AHEAD = 2
_INDEXES: list[tuple[str, list[str], str | None]] = [
    ("ix_usage_events_tenant_time", ["tenant_id", "created_at", "id"], None),
    ("ix_usage_events_key_time", ["key_id", "created_at", "id"], None),
    ("ix_usage_events_tenant_model_time", ["tenant_id", "model", "created_at", "id"], None),
    ("ix_usage_events_upstream_key_time", ["upstream_key_id", "created_at"], None),
    ("ix_usage_events_tenant_errors", ["tenant_id", "created_at", "id"], "status >= 400"),
]


def _next_month(month: date, n: int = 1) -> date:
    index = month.year * 12 + month.month - 1 + n
    return date(index // 12, index % 12 + 1, 1)


def _partition(month: date) -> str:
    return f"usage_events_y{month.year:04d}m{month.month:02d}"


def _indexes(table: str) -> None:
    for name, columns, where in _INDEXES:
        op.create_index(name, table, columns, postgresql_where=sa.text(where) if where else None)


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    found = bind.execute(
        sa.text("SELECT DISTINCT date_trunc('month', created_at AT TIME ZONE 'UTC')::date FROM usage_events")
    ).scalars()
    now = datetime.now(UTC).date().replace(day=1)
    months = sorted(set(found) | {_next_month(now, n) for n in range(AHEAD + 1)})
    op.execute(
        "CREATE TABLE usage_events_partitioned (LIKE usage_events INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
        " PARTITION BY RANGE (created_at)"
    )
    for month in months:
        op.execute(
            f"CREATE TABLE {_partition(month)} PARTITION OF usage_events_partitioned"
            f" FOR VALUES FROM ('{month.isoformat()} 00:00:00+00') TO ('{_next_month(month).isoformat()} 00:00:00+00')"
        )
    op.execute("CREATE TABLE usage_events_default PARTITION OF usage_events_partitioned DEFAULT")
    op.execute("INSERT INTO usage_events_partitioned SELECT * FROM usage_events")
    # The sequence moves to the new table first: dropping the old one would drop a sequence it owns.
    op.execute("ALTER SEQUENCE usage_events_id_seq OWNED BY usage_events_partitioned.id")
    op.drop_table("usage_events")
    op.rename_table("usage_events_partitioned", "usage_events")
    op.create_primary_key("pk_usage_events", "usage_events", ["id", "created_at"])
    op.create_unique_constraint("uq_usage_events_request_id", "usage_events", ["request_id", "created_at"])
    _indexes("usage_events")
    op.execute("ANALYZE usage_events")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    op.execute("CREATE TABLE usage_events_plain (LIKE usage_events INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
    op.execute(
        "INSERT INTO usage_events_plain SELECT DISTINCT ON (request_id) * FROM usage_events"
        " ORDER BY request_id, created_at, id"
    )
    op.execute("ALTER SEQUENCE usage_events_id_seq OWNED BY usage_events_plain.id")
    op.drop_table("usage_events")  # its partitions go with it, detached ones (retention's leftovers) below
    for (name,) in bind.execute(
        sa.text(
            "SELECT relname FROM pg_class WHERE relkind = 'r' AND pg_table_is_visible(oid)"
            r" AND relname ~ '^usage_events_y\d{4}m\d{2}$'"
        )
    ):
        op.execute(f"DROP TABLE {name}")
    op.rename_table("usage_events_plain", "usage_events")
    op.create_primary_key("pk_usage_events", "usage_events", ["id"])
    op.create_unique_constraint("uq_usage_events_request_id", "usage_events", ["request_id"])
    _indexes("usage_events")
    op.execute("ANALYZE usage_events")
