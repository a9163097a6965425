"""The whole database schema: every domain's tables gathered in one metadata
(:mod:`pscs.schema.models`) and the Alembic migrations that build it
(:mod:`pscs.schema.migrate`).  It sits above every package that has tables, so that
:mod:`pscs.db` (the engine and the declarative base) stays below them all."""
