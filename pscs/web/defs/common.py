"""What the records domains' bodies share."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

from pscs.policy.decisions import epoch_ms

# The reasons a hold or a storage request may give (pscs.retention.models.HOLD_REASONS).
Reason = Literal["criminal_investigation", "prosecution", "foi_request", "litigation"]


class Body(BaseModel):
    """A JSON body: a field it does not know is an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid")


# A body's form twin takes this configuration: the page also posts its ``csrf_token``.
FORM_CONFIG = ConfigDict(extra="ignore")


def to_ms(value: datetime) -> int:
    """Epoch milliseconds; a time without a zone (a ``datetime-local`` field) is UTC."""
    return epoch_ms(value if value.tzinfo else value.replace(tzinfo=UTC))
