"""Rules of regions: the catalogue an admin edits, and how a new user gets a region."""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Sequence

from sv_region.directory.exceptions import NoActiveRegion
from sv_region.models import Region, utcnow
from sv_region.regions.exceptions import (
    InvalidRule,
    RegionInUse,
    RegionNotFound,
    RuleConflict,
    RuleNotFound,
)
from sv_region.regions.models import NETWORK, PHONE_PREFIX, AssignmentRule
from sv_region.regions.repository import RegionRepository
from sv_region.regions.schemas import RegionWrite, RuleCreate

PHONE = "0123456789"


def normalize_phone(phone: str) -> str:
    """``+1 (415) 555-0100`` -> ``+14155550100``."""
    digits = "".join(c for c in phone if c in PHONE)
    return "+" + digits if digits else ""


def choose_region(
    username: str,
    regions: Sequence[Region],
    rules: Sequence[AssignmentRule],
    *,
    phone: str | None = None,
    address: str | None = None,
) -> tuple[str, str]:
    """The region for a new user, and the rule that chose it.

    Rules are tried by priority (a longer phone prefix first among equals) and only
    for regions that take new users; then the weighted default spreads users by a
    stable hash of the username, so every instance gives the same answer.
    """
    open_regions = {r.name for r in regions if r.status == "active"}
    phone_key = normalize_phone(phone) if phone else ""
    ip = None
    if address:
        try:
            ip = ipaddress.ip_address(address.strip())
        except ValueError:
            ip = None
    ordered = sorted(rules, key=lambda r: (r.priority, -len(r.match), r.id))
    for rule in ordered:
        if rule.region not in open_regions:
            continue
        if rule.kind == PHONE_PREFIX and phone_key and phone_key.startswith(rule.match):
            return rule.region, f"phone_prefix {rule.match}"
        if rule.kind == NETWORK and ip is not None:
            network = ipaddress.ip_network(rule.match, strict=False)
            if ip.version == network.version and ip in network:
                return rule.region, f"network {rule.match}"
    weighted = sorted(
        (r.name, r.weight) for r in regions if r.name in open_regions and r.weight > 0
    )
    total = sum(w for _, w in weighted)
    if not total:
        raise NoActiveRegion("no region is active to take new users")
    point = int.from_bytes(hashlib.sha256(username.encode()).digest()[:8], "big") % total
    for name, weight in weighted:
        if point < weight:
            return name, "weighted default"
        point -= weight
    raise AssertionError("unreachable")


def validate_rule(data: RuleCreate) -> str:
    """The rule's match in canonical form, or InvalidRule."""
    if data.kind == PHONE_PREFIX:
        match = normalize_phone(data.match)
        if len(match) < 2 or len(match) > 16 or not data.match.strip().startswith("+"):
            raise InvalidRule("a phone prefix looks like +1 or +4420")
        return match
    try:
        return str(ipaddress.ip_network(data.match.strip(), strict=False))
    except ValueError as exc:
        raise InvalidRule(f"{data.match!r} is not a network in CIDR form") from exc


class RegionCatalog:
    def __init__(self, repository: RegionRepository) -> None:
        self.repository = repository

    async def all(self) -> list[Region]:
        return await self.repository.all()

    async def get(self, name: str) -> Region:
        region = await self.repository.get(name)
        if region is None:
            raise RegionNotFound(f"no region {name!r}")
        return region

    async def put(self, name: str, data: RegionWrite) -> tuple[Region, bool]:
        """Create or replace region ``name``; True when it was created."""
        endpoints = (
            {svc: [str(u).rstrip("/") for u in urls] for svc, urls in data.endpoints.items()}
            if data.endpoints is not None
            else None
        )
        region = await self.repository.get(name)
        if region is None:
            region = Region(
                name=name,
                status=data.status,
                endpoints=endpoints,
                discovery=data.discovery,
                weight=data.weight,
                created_at=utcnow(),
                updated_at=utcnow(),
            )
            return await self.repository.add(region), True
        region.status = data.status
        region.endpoints = endpoints
        region.discovery = data.discovery
        region.weight = data.weight
        region.updated_at = utcnow()
        return region, False

    async def delete(self, name: str) -> None:
        region = await self.get(name)
        residents = await self.repository.residents(name)
        if residents:
            raise RegionInUse(f"{residents} users live in {name!r}; disable it instead")
        if any(rule.region == name for rule in await self.repository.rules()):
            raise RegionInUse(f"assignment rules still send users to {name!r}")
        await self.repository.remove(region)

    async def rules(self) -> list[AssignmentRule]:
        return await self.repository.rules()

    async def add_rule(self, data: RuleCreate) -> AssignmentRule:
        match = validate_rule(data)
        await self.get(data.region)
        if await self.repository.rule_for(data.kind, match) is not None:
            raise RuleConflict(f"a {data.kind} rule for {match} exists")
        rule = AssignmentRule(
            kind=data.kind,
            match=match,
            region=data.region,
            priority=data.priority,
            created_at=utcnow(),
        )
        return await self.repository.add_rule(rule)

    async def delete_rule(self, rule_id: int) -> None:
        rule = await self.repository.rule(rule_id)
        if rule is None:
            raise RuleNotFound(f"no rule {rule_id}")
        await self.repository.remove_rule(rule)

    async def assign(
        self, username: str, *, phone: str | None = None, address: str | None = None
    ) -> tuple[str, str]:
        return choose_region(
            username,
            await self.repository.all(),
            await self.repository.rules(),
            phone=phone,
            address=address,
        )
