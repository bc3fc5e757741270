"""Top-ups land in the user's own region, whichever region the administrator is in.

Money enters through the region's ``topup`` system account (which may go negative:
its balance is minus all the money ever put in), so a top-up is an ordinary balanced
entry. A top-up made in error is reversed by a reversing entry, never edited.
"""

from __future__ import annotations

import uuid
from urllib.parse import quote

from sqlalchemy.ext.asyncio import AsyncConnection

from edgelib.identity import Identity
from edgelib.peers import DirectoryClient, PeerProblem, PeerUnavailable
from edgelib.peers import DirectoryEntry as Party
from edgelib.uow import Transactions
from sv_money.exceptions import AmountTooLarge, WrongRegion
from sv_money.idempotency.service import claim, fingerprint
from sv_money.ledger.models import TOPUP_SOURCE, AccountKey
from sv_money.peers import MoneyPeers
from sv_money.posting.exceptions import TransferNotFound
from sv_money.posting.records import COMPLETED, REVERSED, Movement, Transfer
from sv_money.posting.repository import TransferRepository
from sv_money.posting.schemas import TransferRead, transfer_read
from sv_money.posting.service import Posting
from sv_money.tables import utcnow
from sv_money.topups.schemas import ForwardedTopup, TopupCreate, TopupResult


class TopupService:
    def __init__(
        self,
        tx: Transactions,
        directory: DirectoryClient,
        peers: MoneyPeers,
        *,
        region: str,
        max_amount: int,
    ) -> None:
        self.tx = tx
        self.directory = directory
        self.peers = peers
        self.region = region
        self.max_amount = max_amount

    async def create(self, admin: Identity, body: TopupCreate, key: str) -> TopupResult:
        """Top up ``body.username`` in their home region (forwarded there if not this one)."""
        if body.amount > self.max_amount:
            raise AmountTooLarge(f"at most {self.max_amount} minor units per top-up")
        party = await self.directory.lookup(body.username)
        if party.region == self.region:
            return await self.apply(admin.user_id, party, body, key)
        forwarded = ForwardedTopup(
            topup=body,
            user_id=party.user_id,
            username=party.username,
            region=party.region,
            admin_id=admin.user_id,
        )
        response = await self.peers.call(
            party.region,
            "POST",
            "/internal/topups",
            json=forwarded.model_dump(),
            headers={"idempotency-key": key},
            expect=(201,),
        )
        return TopupResult.model_validate(response.json())

    async def apply_forwarded(self, forwarded: ForwardedTopup, key: str) -> TopupResult:
        """A top-up another region resolved to a user of this one."""
        if forwarded.region != self.region:
            raise WrongRegion(f"{forwarded.username} does not live in region {self.region}")
        party = Party(forwarded.user_id, forwarded.username, forwarded.region)
        return await self.apply(forwarded.admin_id, party, forwarded.topup, key)

    async def apply(self, admin_id: str, party: Party, body: TopupCreate, key: str) -> TopupResult:
        transfer_id = str(uuid.uuid4())
        print_ = fingerprint("topup", body.model_dump())

        async def work(conn: AsyncConnection) -> str | None:
            earlier = await claim(
                conn, scope=admin_id, key=key, print_=print_, resource_id=transfer_id
            )
            if earlier is not None:
                return earlier
            source_key = AccountKey.system(TOPUP_SOURCE, body.currency)
            user_key = AccountKey.user(party.user_id, body.currency)
            posting = Posting(conn)
            opened = await posting.ledger.open(source_key, user_key)
            entry_id = await posting.ledger.post(
                "topup",
                [(opened[source_key], -body.amount), (opened[user_key], body.amount)],
                transfer_id=transfer_id,
            )
            movement = Movement(
                id=transfer_id,
                kind="topup",
                payer_id=None,
                payer_username=None,
                payer_region=None,
                payee_id=party.user_id,
                payee_username=party.username,
                payee_region=party.region,
                amount=body.amount,
                currency=body.currency,
                initiated_by=admin_id,
            )
            await posting.transfers.add(
                Transfer.of(movement, status=COMPLETED, at=utcnow(), entry_id=entry_id)
            )
            return None

        earlier = await self.tx.run(work)
        return TopupResult(
            transfer=await self._read(earlier or transfer_id), replayed=earlier is not None
        )

    async def _read(self, transfer_id: str) -> TransferRead:
        found = await self.tx.read(lambda s: TransferRepository(s).get(transfer_id))
        assert found is not None
        return transfer_read(found)

    async def reverse(self, topup_id: str) -> TransferRead:
        """Undo a top-up with a reversing entry, in whichever region holds it."""
        try:
            return await self.reverse_here(topup_id)
        except TransferNotFound:
            pass
        for region in self.peers.regions:
            try:
                response = await self.peers.call(
                    region, "POST", f"/internal/topups/{quote(topup_id, safe='')}/reversal"
                )
            except PeerProblem as exc:
                if exc.status_code == 404:
                    continue
                raise
            except PeerUnavailable:
                continue
            return TransferRead.model_validate(response.json())
        raise TransferNotFound(f"no top-up {topup_id}")

    async def reverse_here(self, topup_id: str) -> TransferRead:
        """Reverse a top-up of this region; asking again changes nothing."""

        async def work(conn: AsyncConnection) -> None:
            posting = Posting(conn)
            topup = await posting.transfers.get(topup_id, lock=True)
            if topup is None or topup.kind != "topup":
                raise TransferNotFound(f"no top-up {topup_id}")
            if topup.status == REVERSED:
                return
            assert topup.entry_id is not None  # a completed top-up has its entry
            await posting.ledger.reverse(topup.entry_id, transfer_id=topup_id)
            await posting.transfers.set_status(topup_id, REVERSED)

        await self.tx.run(work)
        return await self._read(topup_id)
