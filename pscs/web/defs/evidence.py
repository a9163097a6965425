"""The evidence store (S3): custody and the two-person disposal of items."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from pscs.web.defs.common import FORM_CONFIG, Body, Day


class Transfer(Body):
    to: Annotated[str, Field(min_length=1, max_length=200)]
    method: Annotated[str, Field(min_length=1, max_length=200)]
    note: Annotated[str, Field(max_length=1000)] = ""


class DisposalProposal(Body):
    case_reference: Annotated[str, Field(min_length=1, max_length=100)]
    case_closed_on: Day
    authority: Annotated[str, Field(min_length=1, max_length=5000)]


class Withdrawal(Body):
    reason: Annotated[str, Field(min_length=1, max_length=500)]


class DisposalProposalForm(DisposalProposal):
    model_config = FORM_CONFIG
