"""The route table served by sv-config: a published change reaches every gateway live.

With ``GATEWAY_ROUTES_SOURCE=sv-config:<namespace>`` (optionally ``@<cluster>``; the
default cluster is the gateway's region, falling back to sv-config's ``default``) the
gateway follows that namespace of its own environment (``GATEWAY_PROFILE``). The
namespace holds the route table document as JSON: a ``routes`` array and an optional
``defaults`` object, exactly the keys of ``routes.toml``.

- A valid release replaces ``gateway.routing.table`` in one assignment: a request already
  routed keeps the Route it matched, so nothing in flight is dropped.
- A release that fails validation is refused (the config client keeps the running
  version and reports the refusal); the table that runs stays.
- Until a release arrives, and while the namespace has none, the file table serves.
- The last accepted release is cached under ``var/config-cache/``; a gateway that starts
  while sv-config is down routes by it.

The file watcher (:mod:`gateway_api.routing.reload`) is not started in this mode: the
file is only the table the gateway starts with.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from edgelib.configclient import ConfigClient, ConfigRejected, ConfigSnapshot
from gateway_api.routing.table import RouteTableError, parse_routes

if TYPE_CHECKING:
    from gateway_api.gateway import Gateway

logger = logging.getLogger("gateway.routes")

SOURCE_SCHEME = "sv-config:"


class RouteSourceError(ValueError):
    """``GATEWAY_ROUTES_SOURCE`` does not name an sv-config namespace."""


def parse_source(value: str) -> tuple[str, str | None]:
    """``sv-config:<namespace>[@<cluster>]`` as (namespace, cluster or None)."""
    if not value.startswith(SOURCE_SCHEME):
        raise RouteSourceError(
            f"GATEWAY_ROUTES_SOURCE must look like sv-config:<namespace>, not {value!r}"
        )
    namespace, _, cluster = value.removeprefix(SOURCE_SCHEME).partition("@")
    if not namespace:
        raise RouteSourceError("GATEWAY_ROUTES_SOURCE names no namespace")
    return namespace, cluster or None


class ConfigRoutes:
    """Keeps ``gateway.routing.table`` equal to the namespace's latest valid release."""

    def __init__(self, gateway: Gateway, source: str) -> None:
        self.gateway = gateway
        self.namespace, self.cluster = parse_source(source)
        self.client: ConfigClient | None = None

    async def start(self) -> None:
        settings = self.gateway.settings
        pool = self.gateway.upstreams.pool("sv-config", None)
        urls = [instance.url for instance in pool.instances] if pool is not None else []
        if not urls:
            logger.error(
                "no sv-config in the topology; routing by the file table",
                extra={"namespace": self.namespace},
            )
            return
        self.client = ConfigClient(
            urls,
            signer=self.gateway.security.signer,
            namespaces=[self.namespace],
            environment=settings.profile,
            cluster=self.cluster or settings.region or "default",
            instance_id=settings.instance_id,
            service=settings.service_name,
            region=settings.region,
            cache_dir=settings.var_dir / "config-cache" / settings.instance_id,
        )
        self.client.on_change(self.apply, namespace=self.namespace)
        await self.client.start()

    async def stop(self) -> None:
        if self.client is not None:
            await self.client.stop()

    def apply(self, snapshot: ConfigSnapshot) -> None:
        """Install the release's table, or refuse it (the running table stays)."""
        if snapshot.release == 0:
            logger.warning(
                "route namespace has no release; routing by the table already loaded",
                extra={"namespace": self.namespace},
            )
            return
        source = f"sv-config:{self.namespace}@{snapshot.cluster}#{snapshot.release}"
        try:
            table = parse_routes(
                dict(snapshot.values), source=source, rules=self.gateway.routing.rules
            )
        except (RouteTableError, TypeError, ValueError, AttributeError, KeyError) as exc:
            logger.error(
                "route table release rejected; keeping the running table",
                extra={"release": snapshot.release, "error": str(exc)},
            )
            raise ConfigRejected(f"release {snapshot.release}: {exc}") from exc
        self.gateway.routing.table = table
        logger.info(
            "route table applied",
            extra={"source": source, "routes": len(table.routes), "gray": snapshot.gray},
        )
