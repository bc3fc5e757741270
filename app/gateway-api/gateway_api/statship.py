"""Ships a worker's traffic statistics to sv-log: batches with keys, retried until stored.

Every ``interval`` seconds the worker's counts are taken (:meth:`TrafficStats.take`),
cut into batches of at most ``batch_rows`` rows, each with an idempotency key of its
own, and put on an outbox. The outbox is sent in order; a batch leaves it only once
sv-log answered 202 (stored, or stored before: the key is kept with the counts, so a
resend after a lost answer adds nothing). A failed send is retried with capped
backoff, on the next healthy sv-log instance. At shutdown what is left is written to
a spool file and sent, with the same keys, by the next start.

Memory is bounded: beyond ``max_pending_rows`` rows waiting, the oldest batch is
dropped, counted (``dropped_rows``) and logged; at the defaults that is hours of
sv-log being away. A batch sv-log refuses for good (4xx) is dropped and logged too.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import logging
import os
import random
import re
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from edgelib.signing import PeerSigner
from edgelib.tasks import cancel
from gateway_api.stats import TrafficStats, encode_rows

logger = logging.getLogger("gateway.stats")

INTAKE_PATH = "/internal/stats"
#: What sv-log takes as a tenant or app (``sv_log.stats.schemas``), and as a route.
_NAME = re.compile(r"^[A-Za-z0-9_.@:\-]{1,128}$")
_ROUTE = re.compile(r"^[\x20-\x7e]{1,256}$")
#: The tenant of rows whose tenant or app sv-log would refuse (the batch would be lost).
INVALID = "_invalid"


def _intake_safe(row: dict[str, Any]) -> dict[str, Any]:
    """The row as sv-log accepts it: one odd name must not get a whole batch refused."""
    if not _NAME.match(row["tenant"]) or (row["app"] and not _NAME.match(row["app"])):
        row["tenant"], row["app"] = INVALID, ""
    if not _ROUTE.match(row["route"]):
        route = "".join(c if " " <= c <= "~" else "?" for c in row["route"][:256])
        row["route"] = route or "none"
    return row


class SendFailed(Exception):
    """sv-log did not take the batch now (down, 5xx, timeout): it is sent again."""


class SendRefused(Exception):
    """sv-log refused the batch for good (4xx): sending it again cannot help."""


@dataclass(frozen=True)
class Batch:
    key: str
    rows: list[dict[str, Any]]


Send = Callable[[Batch], Awaitable[None]]


class HttpStatsSink:
    """Posts a batch, gzipped and signed, to the first sv-log that takes it."""

    def __init__(
        self, urls: Callable[[], list[str]], signer: PeerSigner, *, timeout: float = 5.0
    ) -> None:
        self.urls = urls
        self.signer = signer
        self._timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=2.0)
        self._session: aiohttp.ClientSession | None = None

    async def __call__(self, batch: Batch) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        body = gzip.compress(orjson.dumps({"rows": batch.rows}), 1)
        urls = self.urls()
        if not urls:
            raise SendFailed("no sv-log instance is up")
        error = ""
        for base in urls:
            headers = {
                "content-type": "application/json",
                "content-encoding": "gzip",
                "idempotency-key": batch.key,
                **self.signer.sign("POST", INTAKE_PATH, body),
            }
            try:
                async with self._session.post(
                    base.rstrip("/") + INTAKE_PATH, data=body, headers=headers
                ) as resp:
                    status = resp.status
                    detail = (await resp.read())[:300].decode("utf-8", "replace")
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                error = f"{base}: {type(exc).__name__}"
                continue
            if status == 202:
                return
            if status in (408, 429) or status >= 500:
                error = f"{base}: {status}"
                continue
            raise SendRefused(f"sv-log answered {status}: {detail}")
        raise SendFailed(error)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class StatsShipper:
    """The outbox of one worker's statistics and the task that empties it."""

    def __init__(
        self,
        stats: TrafficStats,
        send: Send,
        *,
        interval: float = 5.0,
        batch_rows: int = 5000,
        max_pending_rows: int = 200_000,
        spool: Path | None = None,
        key_prefix: str = "",
        backoff_max: float = 10.0,
    ) -> None:
        self.stats = stats
        self.send = send
        self.interval = interval
        self.batch_rows = batch_rows
        self.max_pending_rows = max_pending_rows
        self.spool = spool
        self.key_prefix = key_prefix or uuid.uuid4().hex[:12]
        self.backoff_max = backoff_max
        self.outbox: deque[Batch] = deque()
        self.pending_rows = 0
        self._seq = 0
        self._task: asyncio.Task[None] | None = None
        self._failing = False
        #: This worker's totals since start: shipped rows, rows dropped (outbox full or
        #: refused), and per (tenant, app) the requests counted (``/cluster``).
        self.shipped_rows = 0
        self.dropped_rows = 0
        self.traffic: dict[tuple[str, str], list[int]] = {}

    def cut(self) -> int:
        """Move what was counted since the last cut onto the outbox; how many rows."""
        rows = [_intake_safe(row) for row in encode_rows(self.stats.take())]
        for row in rows:
            seen = self.traffic.get((row["tenant"], row["app"]))
            if seen is None:
                seen = self.traffic[(row["tenant"], row["app"])] = [0, 0, 0]
            seen[0] += row["requests"]
            if row["status_class"] == "4xx":
                seen[1] += row["requests"]
            elif row["status_class"] == "5xx":
                seen[2] += row["requests"]
        for start in range(0, len(rows), self.batch_rows):
            self._seq += 1
            chunk = rows[start : start + self.batch_rows]
            self.outbox.append(Batch(f"{self.key_prefix}-{self._seq}", chunk))
            self.pending_rows += len(chunk)
        while self.pending_rows > self.max_pending_rows and len(self.outbox) > 1:
            lost = self.outbox.popleft()
            self._dropped(lost, "the outbox is full (sv-log away too long)")
        return len(rows)

    def _dropped(self, batch: Batch, why: str) -> None:
        self.pending_rows -= len(batch.rows)
        self.dropped_rows += len(batch.rows)
        logger.warning(
            "traffic statistics dropped",
            extra={"rows": len(batch.rows), "batch": batch.key, "reason": why},
        )

    async def drain(self) -> None:
        """Send the outbox in order; :class:`SendFailed` when sv-log does not take one."""
        while self.outbox:
            batch = self.outbox[0]
            try:
                await self.send(batch)
            except SendRefused as exc:
                self.outbox.popleft()
                self._dropped(batch, str(exc))
                continue
            except Exception as exc:
                if not self._failing:
                    self._failing = True
                    logger.warning(
                        "traffic statistics not shipped; retrying",
                        extra={"error": str(exc) or type(exc).__name__, "rows": self.pending_rows},
                    )
                raise SendFailed(str(exc)) from exc
            self.outbox.popleft()
            self.pending_rows -= len(batch.rows)
            self.shipped_rows += len(batch.rows)
            if self._failing:
                self._failing = False
                logger.info("traffic statistics shipped again", extra={"batch": batch.key})

    async def _run(self) -> None:
        backoff = 0.5
        wait = self.interval
        while True:
            await asyncio.sleep(wait)
            self.cut()
            try:
                await self.drain()
            except SendFailed:
                wait = backoff * (0.5 + random.random())
                backoff = min(backoff * 2, self.backoff_max)
            else:
                backoff = 0.5
                wait = self.interval

    def start(self) -> None:
        """Take up the spool a previous run left, then ship every ``interval`` seconds."""
        self._load_spool()
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="gateway-stats-shipper")

    async def stop(self, flush_timeout: float = 2.0) -> None:
        """One bounded last send; what is still unsent goes to the spool file."""
        await cancel(self._task)
        self._task = None
        self.cut()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(flush_timeout):
                await self.drain()
        self._save_spool()
        closer = getattr(self.send, "aclose", None)
        if closer is not None:
            await closer()

    def _save_spool(self) -> None:
        if not self.outbox or self.spool is None:
            return
        doc = [{"key": b.key, "rows": b.rows} for b in self.outbox]
        try:
            self.spool.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.spool.with_suffix(".tmp")
            tmp.write_bytes(orjson.dumps(doc))
            os.replace(tmp, self.spool)
        except OSError as exc:
            logger.warning(
                "traffic statistics lost at shutdown",
                extra={"rows": self.pending_rows, "error": str(exc)},
            )
            return
        logger.info("traffic statistics spooled", extra={"rows": self.pending_rows})

    def _load_spool(self) -> None:
        if self.spool is None:
            return
        try:
            doc = orjson.loads(self.spool.read_bytes())
        except FileNotFoundError:
            return
        except (OSError, orjson.JSONDecodeError) as exc:
            logger.warning("unreadable statistics spool ignored", extra={"error": str(exc)})
            doc = []
        for item in doc if isinstance(doc, list) else []:
            if isinstance(item, dict) and isinstance(item.get("rows"), list):
                batch = Batch(str(item.get("key")), item["rows"])
                self.outbox.append(batch)
                self.pending_rows += len(batch.rows)
        with contextlib.suppress(OSError):
            self.spool.unlink()

    def snapshot(self) -> dict[str, Any]:
        """Totals for ``/cluster``: per (tenant, app) requests, 4xx and 5xx, this worker's,
        including what is counted but not cut yet."""
        traffic = {k: list(v) for k, v in self.traffic.items()}
        for _minute, rows in self.stats.windows():
            for (tenant, app, _route, index), row in list(rows.items()):
                seen = traffic.setdefault((tenant, app), [0, 0, 0])
                seen[0] += row.requests
                if index == 4:
                    seen[1] += row.requests
                elif index >= 5:
                    seen[2] += row.requests
        return {
            "traffic": [[t, a, *v] for (t, a), v in traffic.items()],
            "pending_rows": self.pending_rows,
            "shipped_rows": self.shipped_rows,
            "dropped_rows": self.dropped_rows,
        }
