"""Which region a request belongs to."""

from __future__ import annotations

from edgelib.identity import Identity
from sv_money.exceptions import WrongRegion


def require_home(caller: Identity, region: str) -> None:
    """A user's money lives in their home region only; refuse a request that went elsewhere."""
    if caller.region != region:
        raise WrongRegion(
            f"{caller.username} lives in region {caller.region!r}, this is {region!r}"
        )
