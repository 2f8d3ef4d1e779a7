"""Alembic environment. Baton drives Alembic itself (``baton db upgrade``) and hands over an
open connection in ``config.attributes["connection"]``; see storage/migrate.py."""

from alembic import context

from storage.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise SystemExit("run migrations with `baton db upgrade`, which supplies the connection")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=True,
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
