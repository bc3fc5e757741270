"""The console as a client of the platform: its public API, through the gateway.

Every call carries the signed-in user's own access token, so the gateway and each
service check that user's permissions again: the console can do nothing its user could
not do with curl. Calls are bounded in time; an error answer (RFC 9457 problem+json or
not) becomes a :class:`PlatformError` that the pages show as a message, never a 500.

:class:`PlatformClient` is the shared connection pool; :meth:`PlatformClient.as_user`
gives a :class:`UserApi` bound to one console session, which renews the access token
with the refresh token kept in the session when it is about to expire (or was refused).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import httpx

from gateway_api.console.sessions import ConsoleSession

#: Renew the access token when it has fewer seconds than this left.
RENEW_MARGIN = 30.0
#: Bytes of an answer the console reads at most (a page never needs more).
MAX_ANSWER_BYTES = 4 * 1024 * 1024


class PlatformError(Exception):
    """A call to the platform failed: its status (0: no answer) and the problem's text."""

    def __init__(
        self, status: int, title: str, detail: str = "", type_: str = "", body: Any = None
    ) -> None:
        super().__init__(f"{status} {title}: {detail}" if detail else f"{status} {title}")
        self.status = status
        self.title = title
        self.detail = detail
        self.type = type_
        self.body = body

    @property
    def message(self) -> str:
        """One line for a flash message or an error page."""
        text = self.detail or self.title
        return f"{text} ({self.status})" if self.status else text


class SessionEnded(PlatformError):
    """The platform no longer accepts this console session's tokens: sign in again."""


def _error(resp: httpx.Response) -> PlatformError:
    body: Any = None
    title, detail, type_ = resp.reason_phrase or "error", "", ""
    try:
        body = resp.json()
    except ValueError:
        body = None
    if isinstance(body, Mapping):
        title = str(body.get("title") or body.get("error") or title)
        detail = str(body.get("detail") or body.get("error_description") or "")
        type_ = str(body.get("type") or "")
    return PlatformError(resp.status_code, title, detail, type_, body)


class PlatformClient:
    """The console's connection pool to the platform's public API."""

    def __init__(self, base_url: str, *, timeout: float, client_type: str = "web") -> None:
        self.base_url = base_url.rstrip("/")
        self.client_type = client_type
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=8),
            follow_redirects=False,
        )

    async def close(self) -> None:
        await self._http.aclose()

    async def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """One call; the decoded JSON answer (None for an empty one) or :class:`PlatformError`."""
        sent = {"accept": "application/json, application/problem+json"}
        if token is not None:
            sent["authorization"] = f"Bearer {token}"
        if headers:
            sent.update(headers)
        clean = None if params is None else {k: v for k, v in params.items() if v not in (None, "")}
        try:
            resp = await self._http.request(method, path, params=clean, json=json, headers=sent)
        except httpx.TimeoutException:
            raise PlatformError(0, "The platform did not answer in time", path) from None
        except httpx.HTTPError as exc:
            raise PlatformError(0, "The platform cannot be reached", str(exc)) from None
        if len(resp.content) > MAX_ANSWER_BYTES:
            raise PlatformError(0, "The platform's answer is too large", path)
        if resp.status_code >= 400:
            raise _error(resp)
        if not resp.content:
            return None
        try:
            return resp.json()
        except ValueError:
            raise PlatformError(
                resp.status_code, "The platform's answer is not JSON", path
            ) from None

    async def login(self, username: str, password: str, tenant: str | None = None) -> Any:
        """auth-jwt's login: ``{access_token, refresh_token, expires_in, ...}``."""
        body: dict[str, Any] = {
            "username": username,
            "password": password,
            "client_type": self.client_type,
        }
        if tenant:
            body["tenant"] = tenant
        return await self.call("POST", "/api/v1/auth/login", json=body)

    def as_user(self, session: ConsoleSession) -> UserApi:
        """Calls made as the user of ``session``."""
        return UserApi(self, session)


class UserApi:
    """The platform's API as one console session's user (renewing its access token)."""

    def __init__(self, platform: PlatformClient, session: ConsoleSession) -> None:
        self.platform = platform
        self.session = session

    async def get(self, path: str, **params: Any) -> Any:
        return await self.call("GET", path, params=params)

    async def post(self, path: str, json: Any = None) -> Any:
        return await self.call("POST", path, json=json)

    async def put(self, path: str, json: Any = None) -> Any:
        return await self.call("PUT", path, json=json)

    async def patch(self, path: str, json: Any = None) -> Any:
        return await self.call("PATCH", path, json=json)

    async def delete(self, path: str, **params: Any) -> Any:
        return await self.call("DELETE", path, params=params)

    async def call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """A call with the session's access token, renewed first when it is about to
        expire, and once more if the platform refuses it as expired."""
        session = self.session
        if session.access_expires - time.time() < RENEW_MARGIN:
            await self.renew(session.access_token)
        try:
            return await self.platform.call(
                method, path, token=session.access_token, params=params, json=json, headers=headers
            )
        except PlatformError as exc:
            if exc.status != 401:
                raise
            await self.renew(session.access_token)
            return await self.platform.call(
                method, path, token=session.access_token, params=params, json=json, headers=headers
            )

    async def renew(self, seen_token: str) -> None:
        """Trade the refresh token for new tokens, unless another call just did."""
        session = self.session
        async with session.renewing:
            if session.access_token != seen_token:
                return  # renewed by a concurrent call while this one waited
            try:
                tokens = await self.platform.call(
                    "POST",
                    "/api/v1/auth/refresh",
                    json={"refresh_token": session.refresh_token, "tenant": session.tenant},
                )
            except PlatformError as exc:
                if exc.status in (400, 401, 403, 422):
                    raise SessionEnded(
                        401, "Your session has ended", "sign in again", exc.type
                    ) from None
                raise
            apply_tokens(session, tokens)

    async def logout(self) -> None:
        """End the platform session behind this console session (auth-jwt revokes it)."""
        await self.platform.call("POST", "/api/v1/auth/logout", token=self.session.access_token)


def apply_tokens(session: ConsoleSession, tokens: Mapping[str, Any]) -> None:
    """Keep a login's or refresh's tokens in ``session``."""
    session.access_token = str(tokens["access_token"])
    session.refresh_token = str(tokens["refresh_token"])
    session.access_expires = time.time() + float(tokens.get("expires_in", 300))
