"""Imports every domain's models so that ``Base.metadata`` knows all tables
(Alembic's autogenerate and the schema tests read it from here)."""

from pscs.audit import models as audit_models  # noqa: F401
from pscs.auth import models as auth_models  # noqa: F401
from pscs.db.base import Base
from pscs.evidence import models as evidence_models  # noqa: F401 - S3 evidence store
from pscs.recording import models as recording_models  # noqa: F401 - also cameras and storage
from pscs.requests import models as request_models  # noqa: F401 - S2 storage requests
from pscs.retention import models as retention_models  # noqa: F401 - S1 holds and disposals
from pscs.video import models as video_models  # noqa: F401 - also the purpose-session tables

metadata = Base.metadata
