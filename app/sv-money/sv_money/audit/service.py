"""The audit: every entry balances, every balance is the sum of its postings, every held
amount is what open holds reserve, no account that may not go negative is, and no
cross-region transfer is half-applied.

The cross-region check compares this region's transfers to each peer with the peer's
decisions on them. States only move forward (pending -> completed/failed here,
nothing -> credited/refused there), so a difference seen across two reads taken at
different moments is read again, one transfer at a time, before it is reported.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Protocol, TypeVar

from sv_money.audit.exceptions import UnknownRegion
from sv_money.audit.repository import AuditRepository
from sv_money.audit.schemas import AuditReport, Violation
from sv_money.crossregion.schemas import (
    InboundPage,
    InboundRecord,
    OutboundPage,
    OutboundRecord,
)
from sv_money.crossregion.service import CrossRegionService
from sv_money.exceptions import PeerProblem, PeerUnavailable
from sv_money.metrics import AUDIT_LAST_RUN, AUDIT_OK, AUDIT_VIOLATIONS
from sv_money.peers import MoneyPeers
from sv_money.tables import accounts, entries, holds, postings, transfers, utcnow
from sv_money.transactions import Transactions

#: A report lists at most this many violations (it still says when there were more).
MAX_LISTED = 1000

R = TypeVar("R", InboundRecord, OutboundRecord)
R_co = TypeVar("R_co", covariant=True)


class _Page(Protocol[R_co]):
    """A page of either region's records, with where the next one starts."""

    @property
    def items(self) -> Sequence[R_co]: ...

    @property
    def next_after(self) -> str | None: ...


class AuditService:
    def __init__(
        self,
        tx: Transactions,
        peers: MoneyPeers,
        crossregion: CrossRegionService,
        *,
        region: str,
        inflight_grace: float,
    ) -> None:
        self.tx = tx
        self.peers = peers
        self.crossregion = crossregion
        self.region = region
        self.grace = timedelta(seconds=inflight_grace)

    async def run_for(self, region: str | None) -> AuditReport:
        """Audit ``region`` (this one when None): here, or by asking that region's sv-money."""
        if region is None or region == self.region:
            return await self.run()
        if region not in self.peers:
            raise UnknownRegion(f"no region {region!r} is known here")
        response = await self.peers.call(region, "GET", "/internal/audit", bulk=True)
        return AuditReport.model_validate(response.json())

    async def run(self) -> AuditReport:
        """Audit this region's ledger, and its cross-region transfers with every peer."""
        violations: list[Violation] = []
        checked: dict[str, int] = {}
        await self.tx.read(lambda s: self._local(AuditRepository(s), violations, checked))
        in_flight = 0
        checked["cross_region_transfers"] = 0
        for peer in self.peers.regions:
            in_flight += await self._cross_region(peer, violations, checked)
        listed = violations[:MAX_LISTED]
        if len(violations) > MAX_LISTED:
            listed.append(
                Violation(check="truncated", detail=f"{len(violations) - MAX_LISTED} more")
            )
        report = AuditReport(
            region=self.region,
            ok=not violations,
            checked=checked,
            violations=listed,
            in_flight=in_flight,
            at=utcnow(),
        )
        AUDIT_OK.labels(self.region).set(1 if report.ok else 0)
        AUDIT_VIOLATIONS.labels(self.region).set(len(violations))
        AUDIT_LAST_RUN.labels(self.region).set(report.at.timestamp())
        return report

    async def _local(
        self, repo: AuditRepository, violations: list[Violation], checked: dict[str, int]
    ) -> None:
        for name, table in (
            ("entries", entries),
            ("postings", postings),
            ("accounts", accounts),
            ("holds", holds),
            ("transfers", transfers),
        ):
            checked[name] = await repo.count(table)
        for row in await repo.unbalanced_entries():
            violations.append(
                Violation(
                    check="unbalanced-entry",
                    detail=f"entry {row.id}: {row.legs} postings summing to {row.total}",
                    ref=str(row.id),
                )
            )
        for row in await repo.currency_mismatches():
            violations.append(
                Violation(
                    check="currency-mismatch",
                    detail=(
                        f"posting {row.id} of entry {row.entry_id} is in {row.account_currency}, "
                        f"its entry in {row.entry_currency}"
                    ),
                    ref=str(row.entry_id),
                )
            )
        for row in await repo.balance_mismatches():
            violations.append(
                Violation(
                    check="balance-mismatch",
                    detail=f"account {row.id}: balance {row.balance}, postings sum {row.posted}",
                    ref=str(row.id),
                )
            )
        for row in await repo.held_mismatches():
            violations.append(
                Violation(
                    check="held-mismatch",
                    detail=f"account {row.id}: held {row.held}, open holds {row.reserved}",
                    ref=str(row.id),
                )
            )
        for row in await repo.overdrawn():
            violations.append(
                Violation(
                    check="negative-balance",
                    detail=(
                        f"{row.owner_kind} account {row.owner} {row.currency}: "
                        f"balance {row.balance}, held {row.held}"
                    ),
                    ref=str(row.id),
                )
            )
        for transfer_id in await repo.completed_without_entry():
            violations.append(
                Violation(
                    check="entry-missing",
                    detail=f"transfer {transfer_id} is settled but has no entry",
                    ref=transfer_id,
                )
            )

    async def _pages(self, fetch: Callable[[str | None], Awaitable[_Page[R]]]) -> dict[str, R]:
        records: dict[str, R] = {}
        after: str | None = None
        while True:
            page = await fetch(after)
            records.update((r.transfer_id, r) for r in page.items)
            if page.next_after is None:
                return records
            after = page.next_after

    async def _remote(self, peer: str, path: str, params: dict[str, str | int]) -> bytes:
        response = await self.peers.call(peer, "GET", path, params=params, bulk=True)
        return response.content

    async def _remote_one(self, peer: str, path: str) -> bytes | None:
        try:
            response = await self.peers.call(peer, "GET", path, bulk=True)
        except PeerProblem as exc:
            if exc.status_code == 404:
                return None
            raise
        return response.content

    def _judge(
        self, sent: OutboundRecord | None, decided: InboundRecord | None, origin: str, payee: str
    ) -> str | None:
        """What is wrong with one transfer from ``origin`` to ``payee``, or None."""
        credited = decided is not None and decided.outcome == "credited"
        if sent is None:
            if credited:
                return f"credited in {payee}, but {origin} made no such transfer"
            return None
        if (
            decided is not None
            and credited
            and (
                decided.amount != sent.amount
                or decided.currency != sent.currency
                or decided.payee_id != sent.payee_id
            )
        ):
            return (
                f"{origin} sent {sent.amount} {sent.currency}, "
                f"{payee} credited {decided.amount} {decided.currency}"
            )
        if sent.status in ("completed", "reversed") and not credited:
            return f"completed in {origin}, but not credited in {payee}"
        if sent.status == "failed" and credited:
            return f"voided in {origin}, but credited in {payee}"
        if sent.status == "pending" and utcnow() - sent.created_at > self.grace:
            return f"still pending in {origin} after {self.grace.total_seconds():.0f} s"
        return None

    async def _cross_region(
        self, peer: str, violations: list[Violation], checked: dict[str, int]
    ) -> int:
        """Both directions between this region and ``peer``; how many are in flight."""
        me = self.region
        local = self.crossregion

        async def remote_decided(after: str | None) -> InboundPage:
            params: dict[str, str | int] = {"origin": me, "limit": 1000}
            if after:
                params["after"] = after
            return InboundPage.model_validate_json(
                await self._remote(peer, "/internal/inbound", params)
            )

        async def remote_sent(after: str | None) -> OutboundPage:
            params: dict[str, str | int] = {"to": me, "limit": 1000}
            if after:
                params["after"] = after
            return OutboundPage.model_validate_json(
                await self._remote(peer, "/internal/outbound", params)
            )

        async def remote_decided_one(transfer_id: str) -> InboundRecord | None:
            doc = await self._remote_one(peer, f"/internal/inbound/{transfer_id}")
            return None if doc is None else InboundRecord.model_validate_json(doc)

        async def remote_sent_one(transfer_id: str) -> OutboundRecord | None:
            doc = await self._remote_one(peer, f"/internal/outbound/{transfer_id}")
            return None if doc is None else OutboundRecord.model_validate_json(doc)

        try:
            # Ours to them: their decisions are read first, then what we sent; a doubt is
            # settled by reading again in that order (a credit always precedes the capture,
            # and a transfer always exists before its credit).
            decided = await self._pages(remote_decided)
            sent = await self._pages(lambda a: local.outbound_page(peer, after=a, limit=1000))
            problems = await self._compare(
                sent,
                decided,
                me,
                peer,
                again_decided=remote_decided_one,
                again_sent=local.outbound_record,
            )
            in_flight = sum(1 for r in sent.values() if r.status == "pending")
            checked["cross_region_transfers"] += len(sent.keys() | decided.keys())
            # Theirs to us: our decisions first, then what they sent.
            decided = await self._pages(lambda a: local.inbound_page(peer, after=a, limit=1000))
            sent = await self._pages(remote_sent)
            problems += await self._compare(
                sent,
                decided,
                peer,
                me,
                again_decided=local.inbound_record,
                again_sent=remote_sent_one,
            )
            checked["cross_region_transfers"] += len(sent.keys() | decided.keys())
        except (PeerUnavailable, PeerProblem) as exc:
            unreachable = Violation(check="peer-unreachable", detail=f"{peer}: {exc}", ref=peer)
            violations.append(unreachable)
            return 0
        violations.extend(problems)
        return in_flight

    async def _compare(
        self,
        sent: dict[str, OutboundRecord],
        decided: dict[str, InboundRecord],
        origin: str,
        payee: str,
        *,
        again_decided: Callable[[str], Awaitable[InboundRecord | None]],
        again_sent: Callable[[str], Awaitable[OutboundRecord | None]],
    ) -> list[Violation]:
        problems: list[Violation] = []
        for transfer_id in sorted(sent.keys() | decided.keys()):
            if self._judge(sent.get(transfer_id), decided.get(transfer_id), origin, payee) is None:
                continue
            # Seen at two moments: look again, the payee's side first.
            decision = await again_decided(transfer_id)
            record = await again_sent(transfer_id)
            problem = self._judge(record, decision, origin, payee)
            if problem is not None:
                problems.append(Violation(check="cross-region", detail=problem, ref=transfer_id))
        return problems
