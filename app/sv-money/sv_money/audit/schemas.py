"""The audit's report."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class Violation(BaseModel):
    #: Which rule: unbalanced-entry, currency-mismatch, balance-mismatch, held-mismatch,
    #: negative-balance, entry-missing, cross-region, peer-unreachable.
    check: str
    detail: str
    ref: str | None = None


class AuditReport(BaseModel):
    region: str
    ok: bool
    #: How many rows each check went through.
    checked: dict[str, int]
    violations: list[Violation]
    #: Cross-region transfers from this region still waiting for their settlement.
    in_flight: int
    at: datetime
