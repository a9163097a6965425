"""Holds on footage (S1)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from pscs.web.defs.common import FORM_CONFIG, Body, Id, Instant, Reason


class NewHold(Body):
    camera_ids: Annotated[list[Id], Field(min_length=1, max_length=200)]
    start: Instant
    end: Instant
    reason: Reason
    reference: Annotated[str, Field(min_length=1, max_length=100)]
    description: Annotated[str, Field(max_length=5000)] = ""


class HoldChange(Body):
    camera_ids: Annotated[list[Id] | None, Field(min_length=1, max_length=200)] = None
    start: Instant | None = None
    end: Instant | None = None
    reference: Annotated[str | None, Field(min_length=1, max_length=100)] = None
    description: Annotated[str | None, Field(max_length=5000)] = None
    owner: Annotated[str | None, Field(min_length=1, max_length=64)] = None


class Reaffirmation(Body):
    note: Annotated[str, Field(max_length=2000)] = ""


class Release(Body):
    reason: Annotated[str, Field(min_length=1, max_length=500)]


class NewHoldForm(NewHold):
    model_config = FORM_CONFIG


class ReaffirmationForm(Reaffirmation):
    model_config = FORM_CONFIG


class ReleaseForm(Release):
    model_config = FORM_CONFIG
