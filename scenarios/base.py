"""The base of the scenario model: the strict model every section derives from, the patterns of
its names and the weight tables shared between sections (see ``scenarios.model``)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict

from bankstream.events import TOPIC_PATTERN
from scenarios.reference import Channel, MixType, Rail
from scenarios.types import Weight, check_weights

SCHEMA_VERSION = 1
NAME_RE = r"^[a-z0-9][a-z0-9_-]{0,62}$"
TOPIC_RE = TOPIC_PATTERN
COLLECTION_RE = r"^[A-Za-z_][A-Za-z0-9_.-]{0,119}$"
CURRENCY_RE = r"^[A-Z]{3}$"


def weighs(what: str) -> AfterValidator:
    """Relative weights of ``what``: not empty, not all zero."""

    def check(value: dict[Any, float]) -> dict[Any, float]:
        check_weights(value, what)
        return value

    return AfterValidator(check)


ChannelWeights = Annotated[dict[Channel, Weight], weighs("channel")]
MixWeights = Annotated[dict[MixType, Weight], weighs("mix")]
RailWeights = Annotated[dict[Rail, Weight], weighs("rail")]


class Strict(BaseModel):
    """Base of every scenario model: unknown keys are errors, values are validated on creation."""

    # strict: a boolean or a quoted number is not a number, as in the JSON Schema
    model_config = ConfigDict(
        extra="forbid", validate_default=True, strict=True, allow_inf_nan=False
    )
