"""Many users on a running local stack, written straight into its SQLite files (what
registering them through the API would leave behind, without hashing a password per
user): sv-region's directory, each region's sv-user accounts, and each user's ``user``
role in auth-rbac (whose instances and the gateways reload the policy when its version
row moves)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from argon2 import PasswordHasher, Type
from sqlalchemy import create_engine, insert, update

from auth_rbac.policy.tables import casbin_rule, rbac_policy_version
from sv_region.directory.models import DirectoryEntry
from sv_user.models import User

#: Regions the users are spread over, in turn.
REGIONS = ("east", "west")


def seed_users(var_dir: Path, count: int, prefix: str, password: str) -> list[tuple[str, str, str]]:
    """``count`` active users ``<prefix>00000``…, spread over the regions, all with one
    argon2id hash of ``password``; returns ``(user_id, username, region)`` of each."""
    data = var_dir / "data"
    # sv-user's default cost (SV_USER_PASSWORD_*), so logins verify without re-hashing.
    hasher = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1, type=Type.ID)
    password_hash = hasher.hash(password)
    start = datetime.now(UTC) - timedelta(days=1)
    users = [
        (str(uuid.uuid4()), f"{prefix}{i:05d}", REGIONS[i % len(REGIONS)]) for i in range(count)
    ]
    directory = [
        {
            "user_id": uid,
            "username": name,
            "region": region,
            "status": "active",
            "created_at": start + timedelta(seconds=i),
        }
        for i, (uid, name, region) in enumerate(users)
    ]
    _insert(data / "sv-region.db", DirectoryEntry.__table__, directory)
    for region in REGIONS:
        accounts = [
            {
                "id": uid,
                "username": name,
                "password_hash": password_hash,
                "region": region,
                "created_at": start,
                "updated_at": start,
            }
            for uid, name, home in users
            if home == region
        ]
        _insert(data / f"sv-user-{region}.db", User.__table__, accounts)
    engine = create_engine(f"sqlite:///{data / 'auth-rbac.db'}")
    try:
        with engine.begin() as conn:
            conn.execute(
                insert(casbin_rule),
                [{"ptype": "g", "v0": uid, "v1": "user", "v2": "default"} for uid, _, _ in users],
            )
            conn.execute(
                update(rbac_policy_version)
                .where(rbac_policy_version.c.id == 1)
                .values(version=rbac_policy_version.c.version + 1)
            )
    finally:
        engine.dispose()
    return users


def _insert(path: Path, table: object, rows: list[dict[str, object]]) -> None:
    engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": 30})
    try:
        with engine.begin() as conn:
            conn.execute(insert(table), rows)  # type: ignore[call-overload]
    finally:
        engine.dispose()
