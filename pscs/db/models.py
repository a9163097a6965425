"""Imports every domain's models so that ``Base.metadata`` knows all tables
(Alembic's autogenerate and the schema tests read it from here)."""

from pscs.audit import models as audit_models  # noqa: F401
from pscs.auth import models as auth_models  # noqa: F401
from pscs.db.base import Base

metadata = Base.metadata
