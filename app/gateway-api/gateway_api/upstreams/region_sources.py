"""Each region's discovery source, as sv-region says: the gateway follows its region list.

sv-region stores a ``discovery`` value per region (``static``, ``etcd:<prefix>``,
``k8s:<namespace>``). :class:`RegionSources` reads the list from sv-region's signed
``GET /internal/regions`` and hands it to :meth:`Discovery.apply_regions`:

- at start (in the background: the start does not wait for sv-region);
- whenever sv-region announces a change on the backend's ``edge.regions`` channel (a
  burst of announcements is one read), so a region created through sv-region's API is
  followed within a round trip;
- every ``refresh`` seconds, for an announcement that was lost (pub/sub is
  fire-and-forget), and again each time the subscription is made anew. Without a
  backend shared with sv-region (none, or the in-process ``memory://`` stand-in of a
  local stack without Redis) no announcement can arrive: then every
  ``UNSHARED_REFRESH`` second at most, so a region created there is routable as soon.

While sv-region does not answer, the last list read stays in force (or the settings'
``GATEWAY_DISCOVERY_REGIONS`` before the first one): a directory outage changes no pool.
Nothing here runs per request.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson

from edgelib.backends.memory import MemoryBackend
from edgelib.discovery import SourceSpec, parse_source
from edgelib.tasks import cancel, follow

if TYPE_CHECKING:
    from edgelib.backends import Backend
    from edgelib.signing import ServiceSigner
    from gateway_api.upstreams.discovery import Discovery, Endpoints
    from gateway_api.upstreams.pools import Pool

logger = logging.getLogger("gateway.discovery")

#: sv-region announces a region or rule change here (the message is the region name).
REGIONS_CHANNEL = "edge.regions"
REGIONS_PATH = "/internal/regions"
#: What a read of sv-region's list gives: each region's source, and the ``endpoints``
#: of the regions that give any.
Listed = tuple[dict[str, SourceSpec], dict[str, "Endpoints"]]
#: How often the list is read at most when sv-region's announcements cannot arrive.
UNSHARED_REFRESH = 1.0
#: At most this many regions are read (sv-region's list is small; this bounds a bad answer).
MAX_REGIONS = 1000
#: At most this many services per region's ``endpoints``, and URLs per service.
MAX_ENDPOINT_SERVICES = 64
MAX_ENDPOINTS = 64
#: An instance base URL the gateway can send to: plain HTTP, a host and maybe a port.
_HTTP_URL = re.compile(r"http://[A-Za-z0-9.\-\[\]:]+/?")


class RegionSources:
    """Keeps :attr:`Discovery.regions` equal to sv-region's regions' ``discovery`` values."""

    def __init__(
        self,
        discovery: Discovery,
        *,
        pool: Pool,
        session: aiohttp.ClientSession,
        signer: ServiceSigner,
        backend: Backend | None,
        refresh: float = 30.0,
        timeout: float = 2.0,
    ) -> None:
        self.discovery = discovery
        self.pool = pool
        self.session = session
        self.signer = signer
        self.backend = backend
        shared = backend is not None and not isinstance(backend, MemoryBackend)
        self.refresh = refresh if shared else min(refresh, UNSHARED_REFRESH)
        self.timeout = timeout
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.reads = 0
        self.failures = 0
        self.last_read: float | None = None
        self.last_error: str | None = None

    async def start(self) -> None:
        self._wake.set()  # read at once
        self._tasks.append(asyncio.create_task(self._run(), name="gateway-region-sources"))
        if self.backend is not None:
            self._tasks.append(asyncio.create_task(self._listen(), name="gateway-region-events"))

    async def stop(self) -> None:
        await cancel(*self._tasks)

    def poke(self, _message: bytes | None = None) -> None:
        """Read the list again soon (announcements arriving meanwhile are one read)."""
        self._wake.set()

    async def _listen(self) -> None:
        assert self.backend is not None
        await follow(
            self.backend,
            REGIONS_CHANNEL,
            self.poke,
            name="gateway-region-events",
            on_subscribed=self.poke,  # announcements may have been missed meanwhile
        )

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), self.refresh)
            except TimeoutError:
                pass
            self._wake.clear()
            listed = await self.read()
            if listed is None:
                if self.discovery.directory is None:  # not heard from sv-region yet
                    await asyncio.sleep(1.0)
                    self._wake.set()
                continue
            try:
                await self.discovery.apply_regions(*listed)
            except Exception:  # a source that cannot be opened must not stop the follower
                logger.exception("region sources not applied")

    async def read(self) -> Listed | None:
        """sv-region's regions: their sources, and the ``endpoints`` of those that give
        any; None when it did not answer (logged)."""
        instance = self.pool.choose("round_robin")
        if instance is None:
            return self._failed("no sv-region instance available")
        headers = self.signer.sign("GET", REGIONS_PATH, b"", destination="sv-region")
        try:
            async with self.session.get(
                instance.url + REGIONS_PATH,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
            ) as resp:
                body = await resp.read()
                if resp.status != 200:
                    return self._failed(f"sv-region answered {resp.status}")
            listed = orjson.loads(body)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            return self._failed(f"{type(exc).__name__}: {exc}")
        if not isinstance(listed, list) or len(listed) > MAX_REGIONS:
            return self._failed("sv-region's region list is not a list of regions")
        regions: dict[str, SourceSpec] = {}
        endpoints: dict[str, Endpoints] = {}
        for raw in listed:
            spec = _source_of(raw)
            if spec is not None:
                regions[raw["name"]] = spec
                urls = _endpoints_of(raw)
                if urls is not None:
                    endpoints[raw["name"]] = urls
        self.reads += 1
        self.last_read = time.time()
        self.last_error = None
        return regions, endpoints

    def _failed(self, error: str) -> Listed | None:
        self.failures += 1
        if error != self.last_error:
            logger.warning("region list not read", extra={"error": error})
        self.last_error = error
        return None  # the caller's answer: nothing read

    def status(self) -> dict[str, Any]:
        return {
            "reads": self.reads,
            "failures": self.failures,
            "last_read": self.last_read,
            "last_error": self.last_error,
        }


def _source_of(raw: object) -> SourceSpec | None:
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        logger.warning("region entry ignored", extra={"entry": str(raw)[:200]})
        return None
    try:
        return parse_source(str(raw.get("discovery", "static")))
    except ValueError:
        logger.warning(
            "region discovery value ignored",
            extra={"region": raw["name"], "discovery": str(raw.get("discovery"))[:200]},
        )
        return None


def _endpoints_of(raw: dict[str, Any]) -> Endpoints | None:
    """A region's ``endpoints`` (service -> base URLs), None when it gives none. sv-region
    checks them as URLs; here a service whose list is not plain ``http://`` URLs (what
    the gateway's transport speaks to an instance), or is empty or too long, is left out."""
    value = raw.get("endpoints")
    if not isinstance(value, dict) or not value:
        return None
    found: dict[str, tuple[str, ...]] = {}
    for service, urls in list(value.items())[:MAX_ENDPOINT_SERVICES]:
        if (
            isinstance(urls, list)
            and 0 < len(urls) <= MAX_ENDPOINTS
            and all(isinstance(u, str) and _HTTP_URL.fullmatch(u) for u in urls)
        ):
            found[str(service)] = tuple(dict.fromkeys(u.rstrip("/") for u in urls))
        else:
            logger.warning(
                "region endpoints ignored",
                extra={"region": raw["name"], "service": str(service)[:100]},
            )
    return found or None
