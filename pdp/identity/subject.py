"""The verified subject: what policies read as `subject.*`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class Subject:
    attributes: Mapping[str, Any]
    """What policies read as `subject.*`: the verified claims (engine values, see
    pdp.engine.values) plus `auth`, a record pdp sets itself ({"method": "jwt", "issuer": ...});
    a claim named `auth` is replaced, so a token cannot pose as another kind of credential."""
    method: str
    """How the subject was verified: "jwt", "mtls", "hmac", "api_key" or "basic"."""
    id: str
    """The subject's identifier: the `sub` claim for a token."""
    issuer: str = ""
    """Who vouched for it: the `iss` claim for a token."""
    expires: datetime | None = None
    """When the credential stops being valid, if it says."""
