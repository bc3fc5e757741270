"""A small etcd v3 client over etcd's JSON gateway (``/v3/...``) and aiohttp.

etcd serves its gRPC API as JSON on the client port too (grpc-gateway): keys and values
are base64, 64-bit integers are strings, and streams (watch, lease keep-alive) are
newline-separated JSON objects, each ``{"result": ...}`` or ``{"error": ...}``. Only what
discovery needs is here: range, put, delete, leases, watch, compaction and status.
The choice over a gRPC client is recorded in doc/decisions.md.
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

__all__ = [
    "EtcdClient",
    "EtcdCompacted",
    "EtcdError",
    "KeyValue",
    "WatchEvent",
]


class EtcdError(Exception):
    """etcd answered with an error, or could not be reached."""


class EtcdCompacted(EtcdError):
    """A watch asked for revisions etcd has compacted away; resync in full."""

    def __init__(self, compact_revision: int) -> None:
        at = f" (compact_revision {compact_revision})" if compact_revision else ""
        super().__init__(f"the revision asked for has been compacted{at}")
        self.compact_revision = compact_revision


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: str
    value: bytes
    mod_revision: int
    lease: int = 0


@dataclass(frozen=True, slots=True)
class WatchEvent:
    kind: str  # "put" or "delete"
    kv: KeyValue


@dataclass(frozen=True, slots=True)
class WatchBatch:
    """One watch response: its events, and the store revision it was sent at."""

    revision: int
    events: tuple[WatchEvent, ...]
    created: bool = False


def _b64(text: str | bytes) -> str:
    raw = text.encode() if isinstance(text, str) else text
    return base64.b64encode(raw).decode("ascii")


def _unb64(text: str | None) -> bytes:
    return base64.b64decode(text) if text else b""


def _range_end(prefix: str) -> str:
    end = bytearray(prefix.encode())
    while end and end[-1] == 0xFF:
        end.pop()
    if not end:
        return _b64(b"\0")
    end[-1] += 1
    return _b64(bytes(end))


def _kv(raw: dict[str, Any]) -> KeyValue:
    return KeyValue(
        key=_unb64(raw.get("key")).decode(),
        value=_unb64(raw.get("value")),
        mod_revision=int(raw.get("mod_revision", 0)),
        lease=int(raw.get("lease", 0)),
    )


class EtcdClient:
    """One etcd endpoint (``http://host:2379``); make it inside a running event loop."""

    def __init__(self, url: str, *, timeout: float = 2.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._session = aiohttp.ClientSession(
            json_serialize=lambda v: orjson.dumps(v).decode(),
            timeout=aiohttp.ClientTimeout(total=None, connect=timeout, sock_read=None),
        )

    async def aclose(self) -> None:
        await self._session.close()

    async def __aenter__(self) -> EtcdClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _call(self, path: str, body: dict[str, Any], timeout: float | None = None) -> Any:
        try:
            async with self._session.post(
                f"{self.url}{path}",
                json=body,
                timeout=aiohttp.ClientTimeout(total=timeout or self.timeout),
            ) as response:
                data = await response.read()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise EtcdError(f"etcd {path}: {type(exc).__name__}: {exc}") from exc
        try:
            answer = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise EtcdError(f"etcd {path}: HTTP {response.status}, not JSON") from exc
        if response.status != 200 or "error" in answer or "code" in answer:
            message = answer.get("message") or answer.get("error") or answer
            if "required revision has been compacted" in str(message):
                raise EtcdCompacted(0)
            raise EtcdError(f"etcd {path}: HTTP {response.status}: {message}")
        return answer

    # -- key/value ------------------------------------------------------------------------

    async def get_prefix(self, prefix: str) -> tuple[int, list[KeyValue]]:
        """Every key under ``prefix`` and the store revision the listing was taken at."""
        answer = await self._call(
            "/v3/kv/range", {"key": _b64(prefix), "range_end": _range_end(prefix)}
        )
        revision = int(answer["header"].get("revision", 0))
        return revision, [_kv(kv) for kv in answer.get("kvs", [])]

    async def count_at(self, prefix: str, revision: int) -> int:
        """How many keys ``prefix`` had at ``revision``; :class:`EtcdCompacted` when etcd no
        longer keeps that revision (so a watch from just after it would be refused)."""
        answer = await self._call(
            "/v3/kv/range",
            {
                "key": _b64(prefix),
                "range_end": _range_end(prefix),
                "revision": str(revision),
                "count_only": True,
            },
        )
        return int(answer.get("count", 0))

    async def put(self, key: str, value: bytes, *, lease: int = 0) -> int:
        body: dict[str, Any] = {"key": _b64(key), "value": _b64(value)}
        if lease:
            body["lease"] = str(lease)
        answer = await self._call("/v3/kv/put", body)
        return int(answer["header"].get("revision", 0))

    async def delete(self, key: str) -> int:
        """Delete one key; the number deleted (0 or 1)."""
        answer = await self._call("/v3/kv/deleterange", {"key": _b64(key)})
        return int(answer.get("deleted", 0))

    async def compact(self, revision: int) -> None:
        await self._call("/v3/kv/compaction", {"revision": str(revision), "physical": True})

    async def status(self, timeout: float | None = None) -> dict[str, Any]:
        answer: dict[str, Any] = await self._call("/v3/maintenance/status", {}, timeout)
        return answer

    # -- leases ---------------------------------------------------------------------------

    async def grant(self, ttl: int) -> int:
        answer = await self._call("/v3/lease/grant", {"TTL": str(ttl)})
        return int(answer["ID"])

    async def keepalive(self, lease: int) -> int:
        """Refresh ``lease`` once; the TTL it now has, 0 when it has expired."""
        answer = await self._call("/v3/lease/keepalive", {"ID": str(lease)})
        result = answer.get("result", answer)
        return int(result.get("TTL", 0))

    async def time_to_live(self, lease: int) -> int:
        """Seconds left on ``lease`` (-1 when it does not exist)."""
        answer = await self._call("/v3/kv/lease/timetolive", {"ID": str(lease)})
        return int(answer.get("TTL", -1))

    async def revoke(self, lease: int) -> None:
        """End ``lease`` now: etcd deletes every key attached to it."""
        with contextlib.suppress(EtcdError):
            await self._call("/v3/lease/revoke", {"ID": str(lease)})
            return
        await self._call("/v3/kv/lease/revoke", {"ID": str(lease)})

    # -- watch ----------------------------------------------------------------------------

    async def watch_prefix(
        self, prefix: str, start_revision: int, *, progress_notify: bool = True
    ) -> AsyncGenerator[WatchBatch, None]:
        """Changes under ``prefix`` from ``start_revision`` on, one batch per response.

        Raises :class:`EtcdCompacted` when that revision is gone, :class:`EtcdError` when
        the stream breaks; the caller resumes from the last revision it applied plus one.
        """
        body = {
            "create_request": {
                "key": _b64(prefix),
                "range_end": _range_end(prefix),
                "start_revision": str(start_revision),
                "progress_notify": progress_notify,
            }
        }
        try:
            async with self._session.post(
                f"{self.url}/v3/watch",
                json=body,
                timeout=aiohttp.ClientTimeout(total=None, connect=self.timeout, sock_read=None),
            ) as response:
                if response.status != 200:
                    raise EtcdError(f"etcd /v3/watch: HTTP {response.status}")
                async for line in response.content:
                    if not line.strip():
                        continue
                    yield _watch_batch(orjson.loads(line))
        except (aiohttp.ClientError, OSError, orjson.JSONDecodeError) as exc:
            raise EtcdError(f"etcd /v3/watch: {type(exc).__name__}: {exc}") from exc
        raise EtcdError("etcd /v3/watch: the stream ended")


def _watch_batch(raw: dict[str, Any]) -> WatchBatch:
    if "error" in raw:
        error = raw["error"]
        raise EtcdError(f"etcd /v3/watch: {error.get('message', error)}")
    result = raw.get("result", {})
    if result.get("canceled"):
        compact = int(result.get("compact_revision", 0))
        if compact:
            raise EtcdCompacted(compact)
        raise EtcdError(f"etcd /v3/watch canceled: {result.get('cancel_reason', '')}")
    events = tuple(
        WatchEvent("delete" if e.get("type") == "DELETE" else "put", _kv(e.get("kv", {})))
        for e in result.get("events", ())
    )
    revision = int(result.get("header", {}).get("revision", 0))
    return WatchBatch(revision, events, created=bool(result.get("created")))
