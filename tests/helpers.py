"""Test helpers: run an app's lifespan and talk to it in-process."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI


@asynccontextmanager
async def running(
    app: FastAPI, *, raise_app_exceptions: bool = True
) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan entered, and an httpx client bound to it."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client


class StaticPermissions:
    """A fixed grant table standing in for auth-rbac in one service's own tests.

    The real check (``edgelib.permissions.PolicyPermissions`` asking auth-rbac) is
    exercised in tests/libs/test_permissions.py and end to end.
    """

    def __init__(self, grants: dict[str, set[str]]) -> None:
        self.grants = grants
        self.asked: list[tuple[str, str]] = []

    async def allowed(self, user_id: str, obj: str, act: str, domain: str | None = None) -> bool:
        """Grants are ``obj:act`` in the default domain, ``obj:act@domain`` in another."""
        wanted = f"{obj}:{act}" if domain in (None, "default") else f"{obj}:{act}@{domain}"
        self.asked.append((user_id, wanted))
        return wanted in self.grants.get(user_id, set())


def grant(app: FastAPI, user_id: str, *permissions: str) -> FastAPI:
    """Let ``user_id`` hold ``permissions`` in ``app``'s own permission checks."""
    current = getattr(app.state, "permissions", None)
    if not isinstance(current, StaticPermissions):
        current = app.state.permissions = StaticPermissions({})
    current.grants.setdefault(user_id, set()).update(permissions)
    return app


def wait_for(
    condition: Callable[[], bool], timeout: float, what: str, *, interval: float = 0.01
) -> float:
    """Seconds until ``condition()`` holds; a process not answering yet (or a document
    without that part yet) is asked again. AssertionError naming ``what`` after ``timeout``."""
    start = time.monotonic()
    while True:
        try:
            if condition():
                return time.monotonic() - start
        except (httpx.HTTPError, KeyError, ValueError):
            pass  # not answering yet, or /cluster without that part yet: ask again
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(interval)
