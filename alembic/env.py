"""Alembic environment for AlphaForge.

Database URL: ``-x db=URL``, else ``$ALPHAFORGE_DB_URL``, else ``sqlite:///alphaforge.db``. When
``alphaforge.db.migrate`` runs a migration it passes an open connection in ``config.attributes["connection"]``
(already holding the migration lock). SQLite uses batch mode so that ALTERs are table rebuilds.
"""

from __future__ import annotations

from sqlalchemy import Connection, Engine, create_engine, pool

from alembic import context
from alphaforge.db.migrate import resolve_url
from alphaforge.db.models import Base

config = context.config
target_metadata = Base.metadata


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        compare_server_default=True,
    )


def run_migrations_offline() -> None:
    context.configure(
        url=resolve_url(context.get_x_argument(as_dictionary=True).get("db")),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    given = config.attributes.get("connection")  # a Connection (alphaforge) or an Engine (pytest-alembic)
    if isinstance(given, Connection):
        _run(given)
        return
    owned = given is None
    engine: Engine = given if isinstance(given, Engine) else create_engine(
        resolve_url(context.get_x_argument(as_dictionary=True).get("db")), poolclass=pool.NullPool
    )
    with engine.connect() as conn:
        _run(conn)
        conn.commit()
    if owned:
        engine.dispose()


def _run(connection: Connection) -> None:
    if connection.dialect.name != "sqlite":
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    # SQLite batch mode rebuilds tables (copy, drop, rename). With foreign_keys=ON, dropping the old parent
    # table would fire ON DELETE CASCADE and delete every child row; so foreign keys are off while migrating
    # and checked afterwards. The PRAGMA only works outside a transaction: it goes to the driver directly.
    driver = connection.connection.driver_connection
    assert driver is not None
    driver.execute("PRAGMA foreign_keys = OFF")
    try:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
            violations = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
            if violations:
                raise RuntimeError(f"migration left foreign-key violations: {violations[:5]}")
        if connection.in_transaction():  # the caller's transaction: end it, or the PRAGMA below is ignored
            connection.commit()
    except BaseException:
        if connection.in_transaction():
            connection.rollback()
        raise
    finally:
        driver.execute("PRAGMA foreign_keys = ON")


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
