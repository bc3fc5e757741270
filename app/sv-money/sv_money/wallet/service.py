"""The caller's accounts."""

from __future__ import annotations

from edgelib.identity import Identity
from edgelib.uow import Transactions
from sv_money.ledger.repository import LedgerRepository
from sv_money.regions import require_home
from sv_money.wallet.schemas import AccountRead


class WalletService:
    def __init__(self, tx: Transactions, *, region: str) -> None:
        self.tx = tx
        self.region = region

    async def accounts(self, caller: Identity) -> list[AccountRead]:
        """The caller's balance and held funds in each currency they have used."""
        require_home(caller, self.region)
        found = await self.tx.read(lambda s: LedgerRepository(s).user_accounts(caller.user_id))
        return [
            AccountRead(
                currency=a.key.currency, balance=a.balance, held=a.held, available=a.available
            )
            for a in found
        ]
