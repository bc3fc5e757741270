"""The "transfer received" platform event, for sv-notice in the payee's region.

Published after the credit is committed, through edgelib's non-blocking publisher:
a slow or absent sv-notice never holds up a transfer. The event id is derived from
the transfer, so sv-notice keeps one notice however often it is delivered.
"""

from __future__ import annotations

from decimal import Decimal

from edgelib.events import TRANSFER_RECEIVED, EventPublisher, PlatformEvent
from sv_money.currencies import MINOR_UNITS


def major_units(amount: int, currency: str) -> str:
    """``2500`` EUR -> ``"25.00"``; ``500`` JPY -> ``"500"``."""
    digits = MINOR_UNITS.get(currency, 2)
    return f"{Decimal(amount).scaleb(-digits):.{digits}f}"


class TransferNotices:
    def __init__(self, publisher: EventPublisher | None) -> None:
        self.publisher = publisher

    def received(
        self,
        *,
        transfer_id: str,
        payee_id: str,
        region: str,
        amount: int,
        currency: str,
        from_username: str,
        memo: str | None,
    ) -> None:
        if self.publisher is None:
            return
        data = {
            "amount": major_units(amount, currency),
            "currency": currency,
            "from_username": from_username,
            "transfer_id": transfer_id,
        }
        if memo:
            data["note"] = memo
        self.publisher.publish(
            PlatformEvent(
                type=TRANSFER_RECEIVED,
                user_id=payee_id,
                region=region,
                id=f"transfer-received:{transfer_id}",
                source="sv-money",
                data=data,
            )
        )
