"""What the records domains' bodies share, and the checked numbers and times that every
route's parameters and bodies are made of.

Every integer and time that enters through the web is one of the types below, so a value
out of range (an id past 2^63, a date in the year 9999) is a 422 naming the field, never an
overflow deeper down.  The window for times is :data:`pscs.clock.EARLIEST` to
:data:`pscs.clock.LATEST`."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from annotated_types import Interval
from pydantic import AfterValidator, BaseModel, ConfigDict

from pscs import clock
from pscs.db.base import MAX_INT

# A row's id: positive, and no larger than the database can hold.
Id = Annotated[int, Interval(ge=1, le=MAX_INT)]
# A count or a sequence position that may be zero.
Count = Annotated[int, Interval(ge=0, le=MAX_INT)]
# A point of footage as UTC epoch milliseconds, inside the accepted window.
EpochMs = Annotated[int, Interval(ge=clock.EARLIEST_MS, le=clock.LATEST_MS)]
# A time (ISO 8601; without a zone it is UTC), inside the accepted window, returned in UTC.
Instant = Annotated[datetime, AfterValidator(clock.check_instant)]
# A calendar day inside the accepted window.
Day = Annotated[date, AfterValidator(clock.check_day)]
# A calendar year inside the accepted window.
Year = Annotated[int, Interval(ge=clock.EARLIEST.year, le=clock.LATEST.year)]

# The reasons a hold or a storage request may give (pscs.retention.models.HOLD_REASONS).
Reason = Literal["criminal_investigation", "prosecution", "foi_request", "litigation"]


class Body(BaseModel):
    """A JSON body: a field it does not know is an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid")


# A body's form twin takes this configuration: the page also posts its ``csrf_token``.
FORM_CONFIG = ConfigDict(extra="ignore")
