"""What the records domains' bodies share."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

# The reasons a hold or a storage request may give (pscs.retention.models.HOLD_REASONS).
Reason = Literal["criminal_investigation", "prosecution", "foi_request", "litigation"]


class Body(BaseModel):
    """A JSON body: a field it does not know is an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid")


# A body's form twin takes this configuration: the page also posts its ``csrf_token``.
FORM_CONFIG = ConfigDict(extra="ignore")
