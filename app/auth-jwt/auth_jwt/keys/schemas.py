"""Bodies of the keys API."""

from __future__ import annotations

from pydantic import BaseModel


class RotatedKey(BaseModel):
    kid: str
    alg: str
    #: Every kid the JWKS now publishes, the new one first.
    published: list[str]
