"""The console's page reads and changes: a platform error becomes a message, an ended
session still goes to sign-in."""

from __future__ import annotations

import pytest

from gateway_api.console.client import PlatformError, SessionEnded
from gateway_api.console.fetching import changed, fetched
from gateway_api.console.sessions import ConsoleSession


def _session() -> ConsoleSession:
    return ConsoleSession("u1", "ann", "default", "access", "refresh", 0.0)


async def _answer() -> dict[str, int]:
    return {"n": 1}


async def _refused() -> None:
    raise PlatformError(403, "Forbidden", "this needs the permission sessions:read")


async def _ended() -> None:
    raise SessionEnded(401, "Your session has ended", "sign in again")


async def test_a_read_gives_its_data_or_the_error_as_a_message() -> None:
    ok = await fetched(_answer())
    assert (ok.ok, ok.data, ok.error) == (True, {"n": 1}, "")
    refused = await fetched(_refused())
    assert not refused.ok
    assert refused.data is None
    assert refused.status == 403
    assert refused.error == "this needs the permission sessions:read (403)"
    with pytest.raises(SessionEnded):
        await fetched(_ended())


async def test_a_change_flashes_what_was_done_or_why_not() -> None:
    session = _session()
    assert await changed(session, _answer(), "Done.")
    assert not await changed(session, _refused(), "Never shown.")
    assert session.take_flashes() == [
        ("ok", "Done."),
        ("error", "Not done: this needs the permission sessions:read (403)"),
    ]
    with pytest.raises(SessionEnded):
        await changed(session, _ended(), "Never shown.")
