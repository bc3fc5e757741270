"""Config-centre client: a service's namespaces from sv-config, kept current and cached.

At start the client reads its last good copy of each namespace from a local file, asks
sv-config for anything newer (briefly: a service must start while sv-config is down),
and hands the result to the registered callbacks. It then holds one long poll to
sv-config: a published change comes back within the poll's round trip, is given to
the callbacks, and, once they accept it, becomes the running version and the new
cached copy. A callback refuses a change by raising; the previous version keeps
running. The client says who it is (instance id, region, labels) so that gray
releases can target it.

    client = ConfigClient(urls, signer=signer, namespaces=["flags"], environment="prod",
                          instance_id="sv-user-east-7201", region="east",
                          cache_dir=var_dir / "config-cache" / "sv-user-east-7201")
    client.on_change(apply_flags, namespace="flags")
    await client.start()
    ...
    await client.stop()
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import httpx
import orjson
from prometheus_client import Counter, Gauge

from edgelib.client import ServiceCallError, ServiceClient
from edgelib.signing import ServiceSigner
from edgelib.tasks import cancel

logger = logging.getLogger("edgelib.configclient")

WATCH_PATH = "/internal/config/watch"
CACHE_FORMAT = 1

Source = Literal["server", "cache", "none"]

RELEASE = Gauge(
    "edge_config_release",
    "Release number of each config namespace this process runs (0: none).",
    ["namespace"],
)
GRAY = Gauge(
    "edge_config_gray", "1 when the namespace's running release is a gray release.", ["namespace"]
)
FROM_CACHE = Gauge(
    "edge_config_from_cache",
    "1 while the namespace runs on the local cached copy, not yet confirmed by sv-config.",
    ["namespace"],
)
CONNECTED = Gauge("edge_config_connected", "1 when the last call to sv-config succeeded.")
UPDATES = Counter(
    "edge_config_updates_total",
    "Config releases received, by outcome (applied or rejected by a callback).",
    ["namespace", "outcome"],
)


class ConfigError(Exception):
    """sv-config answered something the client cannot use."""


class ConfigRejected(Exception):
    """Raised by a callback to refuse a release; the service keeps its previous one."""


@dataclass(frozen=True)
class ConfigSnapshot:
    """One namespace as a service runs it."""

    namespace: str
    environment: str
    cluster: str
    release: int
    release_id: int
    values: Mapping[str, Any] = field(default_factory=dict)
    types: Mapping[str, str] = field(default_factory=dict)
    gray: bool = False
    source: Source = "none"

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def describe(self) -> dict[str, Any]:
        return {
            "release": self.release,
            "gray": self.gray,
            "source": self.source,
            "cluster": self.cluster,
        }


Callback = Callable[[ConfigSnapshot], Awaitable[None] | None]


class ConfigClient:
    """Loads, caches and follows namespaces of one environment and cluster."""

    def __init__(
        self,
        base_urls: str | Sequence[str],
        *,
        signer: ServiceSigner,
        namespaces: Sequence[str],
        environment: str,
        instance_id: str,
        cache_dir: Path,
        cluster: str = "default",
        service: str = "",
        region: str | None = None,
        labels: Mapping[str, str] | None = None,
        wait: float = 30.0,
        start_timeout: float = 3.0,
        retry_max: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not namespaces:
            raise ValueError("ConfigClient needs at least one namespace")
        self.namespaces = list(dict.fromkeys(namespaces))
        self.environment = environment
        self.cluster = cluster
        self.instance_id = instance_id
        self.service = service
        self.region = region
        self.labels = dict(labels or {})
        self.cache_dir = cache_dir
        self.wait = wait
        self.start_timeout = start_timeout
        self.retry_max = retry_max
        self.connected = False
        self.last_change_at: float | None = None
        self._http = ServiceClient(
            base_urls,
            signer=signer.to("sv-config"),
            timeout=wait + 10.0,
            connect_timeout=1.0,
            retries=0,
            transport=transport,
        )
        self._current = {
            ns: ConfigSnapshot(ns, environment, cluster, release=0, release_id=0)
            for ns in self.namespaces
        }
        #: Release id last received per namespace, applied or not: what the next poll says.
        self._known = dict.fromkeys(self.namespaces, 0)
        self._rejected: dict[str, int] = {}
        self._callbacks: list[tuple[str | None, Callback]] = []
        self._task: asyncio.Task[None] | None = None

    # --- what the service uses -------------------------------------------------

    def on_change(self, callback: Callback, *, namespace: str | None = None) -> None:
        """Call ``callback(snapshot)`` for every version of ``namespace`` (or of every one)
        the client is about to run, the first one included. Raising refuses the version."""
        if namespace is not None and namespace not in self._current:
            raise ValueError(f"{namespace!r} is not one of this client's namespaces")
        self._callbacks.append((namespace, callback))

    def snapshot(self, namespace: str) -> ConfigSnapshot:
        """The version of ``namespace`` that runs now."""
        return self._current[namespace]

    def values(self, namespace: str) -> Mapping[str, Any]:
        return self._current[namespace].values

    def readiness(self) -> dict[str, Any]:
        """What ``/readyz`` shows: the release each namespace runs, and where it came from."""
        detail: dict[str, Any] = {
            "environment": self.environment,
            "connected": self.connected,
            "namespaces": {ns: snap.describe() for ns, snap in self._current.items()},
        }
        if self._rejected:
            detail["rejected"] = dict(self._rejected)
        return detail

    async def start(self) -> None:
        """Load the cached copies, catch up with sv-config if it answers, start following."""
        loaded: dict[str, ConfigSnapshot | None] = {
            ns: self._read_cache(ns) for ns in self.namespaces
        }
        for ns, cached in loaded.items():
            if cached is not None:
                self._known[ns] = cached.release_id
        try:
            changes = await asyncio.wait_for(self._poll(0.0), self.start_timeout)
        except (ServiceCallError, ConfigError, TimeoutError, httpx.HTTPError) as exc:
            self._set_connected(False)
            logger.warning(
                "sv-config unreachable at start; running on the cached config",
                extra={"error": str(exc) or type(exc).__name__},
            )
        else:
            self._set_connected(True)
            for snapshot in changes:
                loaded[snapshot.namespace] = snapshot
            for ns, cached in loaded.items():
                if cached is not None and cached.source == "cache":
                    loaded[ns] = replace(cached, source="server")  # sv-config has the same
        for first in loaded.values():
            if first is not None:
                await self._apply(first)
        self._task = asyncio.create_task(self._follow(), name="config-client-follow")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel(task)
        await self._http.aclose()

    # --- following sv-config --------------------------------------------------------

    async def _follow(self) -> None:
        delay = 0.2
        while True:
            try:
                # Back from an outage: answer at once, so what runs is confirmed (or caught up).
                changes = await self._poll(self.wait if self.connected else 0.0)
            except (ServiceCallError, ConfigError, httpx.HTTPError) as exc:
                if isinstance(exc, ConfigError):
                    logger.error("sv-config refused the watch", extra={"error": str(exc)})
                elif self.connected:
                    logger.warning(
                        "lost sv-config; keeping the running config",
                        extra={"error": str(exc) or type(exc).__name__},
                    )
                self._set_connected(False)
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, self.retry_max)
                continue
            if not self.connected:
                logger.info("sv-config reachable again")
            self._set_connected(True)
            delay = 0.2
            for snapshot in changes:
                await self._apply(snapshot)
            self._confirm_cached()

    def _confirm_cached(self) -> None:
        """sv-config answered: copies still marked as cached are the ones it serves."""
        for ns, snapshot in self._current.items():
            if snapshot.source == "cache" and self._known[ns] == snapshot.release_id:
                self._current[ns] = replace(snapshot, source="server")
                FROM_CACHE.labels(ns).set(0)

    async def _poll(self, wait: float) -> list[ConfigSnapshot]:
        body = {
            "environment": self.environment,
            "client": {
                "instance": self.instance_id,
                "service": self.service,
                "region": self.region,
                "labels": self.labels,
            },
            "namespaces": [
                {"name": ns, "cluster": self.cluster, "known": self._known[ns]}
                for ns in self.namespaces
            ],
            "wait": wait,
        }
        response = await self._http.post(WATCH_PATH, json=body)
        if response.status_code == 304:
            return []
        if response.status_code != 200:
            raise ConfigError(f"sv-config answered {response.status_code}: {response.text[:300]}")
        try:
            changes = orjson.loads(response.content)["changes"]
            snapshots = [
                ConfigSnapshot(
                    namespace=str(c["name"]),
                    environment=self.environment,
                    cluster=str(c.get("resolved_cluster") or self.cluster),
                    release=int(c["release"]),
                    release_id=int(c["release_id"]),
                    values=dict(c["values"]),
                    types=dict(c.get("types") or {}),
                    gray=bool(c.get("gray", False)),
                    source="server",
                )
                for c in changes
            ]
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"malformed answer from sv-config: {exc}") from exc
        return [s for s in snapshots if s.namespace in self._current]

    async def _apply(self, snapshot: ConfigSnapshot) -> bool:
        """Run the callbacks; if none refuses, make ``snapshot`` current and cache it."""
        ns = snapshot.namespace
        self._known[ns] = snapshot.release_id
        for wanted, callback in self._callbacks:
            if wanted is not None and wanted != ns:
                continue
            try:
                result = callback(snapshot)
                if inspect.isawaitable(result):
                    await result
            except Exception as exc:
                self._rejected[ns] = snapshot.release
                UPDATES.labels(ns, "rejected").inc()
                logger.error(
                    "config release refused; keeping the running one",
                    extra={
                        "namespace": ns,
                        "release": snapshot.release,
                        "running": self._current[ns].release,
                        "error": str(exc) or type(exc).__name__,
                    },
                )
                return False
        self._rejected.pop(ns, None)
        self._current[ns] = snapshot
        self.last_change_at = time.time()
        UPDATES.labels(ns, "applied").inc()
        RELEASE.labels(ns).set(snapshot.release)
        GRAY.labels(ns).set(1 if snapshot.gray else 0)
        FROM_CACHE.labels(ns).set(1 if snapshot.source == "cache" else 0)
        logger.info(
            "config release applied",
            extra={
                "namespace": ns,
                "release": snapshot.release,
                "gray": snapshot.gray,
                "source": snapshot.source,
            },
        )
        if snapshot.source == "server":
            await asyncio.to_thread(self._write_cache, snapshot)
        return True

    def _set_connected(self, connected: bool) -> None:
        self.connected = connected
        CONNECTED.set(1 if connected else 0)

    # --- the local copy -------------------------------------------------------------

    def cache_path(self, namespace: str) -> Path:
        return self.cache_dir / f"{self.environment}.{self.cluster}.{namespace}.json"

    def _read_cache(self, namespace: str) -> ConfigSnapshot | None:
        path = self.cache_path(namespace)
        try:
            doc = orjson.loads(path.read_bytes())
            if doc.get("format") != CACHE_FORMAT or doc.get("environment") != self.environment:
                return None
            return ConfigSnapshot(
                namespace=namespace,
                environment=self.environment,
                cluster=str(doc["cluster"]),
                release=int(doc["release"]),
                release_id=int(doc["release_id"]),
                values=dict(doc["values"]),
                types=dict(doc.get("types") or {}),
                gray=bool(doc.get("gray", False)),
                source="cache",
            )
        except FileNotFoundError:
            return None
        except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            logger.warning(
                "config cache unreadable; ignored", extra={"path": str(path), "error": str(exc)}
            )
            return None

    def _write_cache(self, snapshot: ConfigSnapshot) -> None:
        path = self.cache_path(snapshot.namespace)
        doc = {
            "format": CACHE_FORMAT,
            "namespace": snapshot.namespace,
            "environment": snapshot.environment,
            "cluster": snapshot.cluster,
            "release": snapshot.release,
            "release_id": snapshot.release_id,
            "gray": snapshot.gray,
            "values": snapshot.values,
            "types": snapshot.types,
            "saved_at": time.time(),
        }
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
            os.replace(tmp, path)  # atomic: a crash never leaves half a file
        except OSError as exc:
            logger.warning("config cache not written", extra={"path": str(path), "error": str(exc)})
