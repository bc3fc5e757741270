"""sv-money's domain metrics (RED metrics come from edgelib; names: doc/observability.md)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from edgelib.problems import Problem

#: ``any`` for refusals and errors (the payee's region may not be known yet).
TRANSFER_KINDS = ("same_region", "cross_region", "any")
#: A new transfer's state when the request ends (completed, pending: crossing regions,
#: failed), or: replayed (an Idempotency-Key seen before), refused (a 4xx), error.
TRANSFER_OUTCOMES = ("completed", "pending", "failed", "reversed", "replayed", "refused", "error")
HOLD_ACTIONS = ("create", "capture", "void", "expire")
HOLD_OUTCOMES = ("ok", "replayed", "refused", "error")

TRANSFERS = Counter(
    "edge_sv_money_transfers",
    "Transfer requests by kind (same_region, cross_region; any for refused) and outcome.",
    ["kind", "outcome"],
)
HOLDS = Counter(
    "edge_sv_money_holds",
    "Hold operations by action (create, capture, void, expire) and outcome.",
    ["action", "outcome"],
)
AUDIT_OK = Gauge(
    "edge_sv_money_audit_ok",
    "1 when the region's last ledger audit found nothing wrong, 0 when it found violations.",
    ["region"],
)
AUDIT_VIOLATIONS = Gauge(
    "edge_sv_money_audit_violations", "Violations the region's last audit found.", ["region"]
)
AUDIT_LAST_RUN = Gauge(
    "edge_sv_money_audit_last_run_timestamp_seconds",
    "When the region's last ledger audit finished (Unix time).",
    ["region"],
)
# Every series a dashboard or alert reads exists from the start, at 0.
for _kind in ("same_region", "cross_region"):
    for _outcome in ("completed", "pending", "failed", "replayed"):
        TRANSFERS.labels(_kind, _outcome)
for _outcome in ("refused", "error"):
    TRANSFERS.labels("any", _outcome)
for _action in HOLD_ACTIONS:
    for _outcome in HOLD_OUTCOMES:
        HOLDS.labels(_action, _outcome)


def refusal_outcome(exc: BaseException) -> str:
    """``refused`` for an answer to the caller (a 4xx problem), ``error`` for anything else."""
    if isinstance(exc, Problem) and exc.status_code < 500:
        return "refused"
    return "error"
