"""Storage requests and the Records Commander's log (S2)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from pscs.web.defs.common import FORM_CONFIG, Body, Id, Instant, Reason

RequestStatus = Literal["submitted", "approved", "denied", "fulfilled"]


class NewRequest(Body):
    unit: Annotated[str, Field(min_length=1, max_length=200)]
    case_number: Annotated[str, Field(min_length=1, max_length=100)]
    camera_ids: Annotated[list[Id], Field(min_length=1, max_length=200)]
    start: Instant
    end: Instant
    reason: Reason
    narrative: Annotated[str, Field(min_length=1, max_length=5000)]
    attestation_name: Annotated[str, Field(min_length=1, max_length=200)]


class RequestDecision(Body):
    approve: bool
    reason: Annotated[str, Field(max_length=2000)] = ""


class NewRequestForm(NewRequest):
    model_config = FORM_CONFIG


class RequestDecisionForm(BaseModel):
    """The log page's two buttons, approve and deny, with the reason."""

    model_config = FORM_CONFIG

    decision: Literal["approve", "deny"]
    reason: Annotated[str, Field(max_length=2000)] = ""

    def as_body(self) -> RequestDecision:
        return RequestDecision(approve=self.decision == "approve", reason=self.reason)
