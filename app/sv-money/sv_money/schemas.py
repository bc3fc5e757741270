"""Field types shared by sv-money's request bodies."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field

from sv_money.currencies import CURRENCY_PATTERN, is_currency

#: sv-region's username rule; anything else cannot name a user.
USERNAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{2,31}$"
#: The largest amount the schema accepts (the service may set a lower limit).
AMOUNT_LIMIT = 10**15


def _iso_currency(code: str) -> str:
    if not is_currency(code):
        raise ValueError(f"{code} is not an active ISO 4217 currency")
    return code


#: A positive whole number of minor units: strictly an integer (no "10", no 10.0, no true).
Amount = Annotated[int, Field(strict=True, gt=0, le=AMOUNT_LIMIT)]
Currency = Annotated[
    str, Field(pattern=CURRENCY_PATTERN, examples=["USD"]), AfterValidator(_iso_currency)
]
Username = Annotated[str, Field(pattern=USERNAME_PATTERN)]
Memo = Annotated[str, Field(max_length=140)]
