"""the keyword index: SQLite FTS5 kept by triggers, PostgreSQL a generated tsvector with GIN

SQLite: an external-content FTS5 table over `memories` (by rowid, `unicode61 remove_diacritics
2`), kept by AFTER INSERT / DELETE / UPDATE OF text triggers, so every write path updates it in
the memory row's own transaction; the existing rows are indexed by a 'rebuild'. PostgreSQL: a
STORED generated column `search_vector` (`to_tsvector('simple', ...)` of the folded text) with a
GIN index; adding the column computes it for every existing row. The ORM models leave these
objects out (see storage.keyword_ddl.is_index_object). The DDL lives in storage/keyword_ddl.py,
which `repair` also uses to re-create the SQLite triggers; it must not change without a new
migration.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

from storage import keyword_ddl as ddl

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def _run(statements: tuple[str, ...] | list[str]) -> None:
    bind = op.get_bind()
    for statement in statements:
        bind.exec_driver_sql(statement)


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _run([ddl.SQLITE_CREATE, *ddl.SQLITE_TRIGGER_DDL, ddl.SQLITE_REBUILD])
    else:
        _run(ddl.PG_CREATE)


def downgrade() -> None:
    _run(ddl.SQLITE_DROP if op.get_bind().dialect.name == "sqlite" else ddl.PG_DROP)
