"""The platform's user mix for Locust (``make bench-platform``, bench/platform.py).

Each simulated user is one of the accounts bench/platform.py made (registered, logged
in, topped up), read from ``BENCH_PLATFORM_ACCOUNTS``, and does, by weight:

- 60% reads of its own data: wallet balances, profile, transfer history;
- 20% transfers, a third of them to a user of the other region;
- 10% inbox reads;
-  9% admin reads: config namespaces and log records (with the admin's token);
-  1% account work: a registration, a login or a token refresh.

Every request goes through the gateway; Locust names requests by operation, so the
statistics are per operation, not per URL.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import uuid
from pathlib import Path
from typing import Any

from locust import FastHttpUser, between, events, task

ACCOUNTS: list[dict[str, Any]] = []
ADMIN = ""
PASSWORD = "correct-horse-battery-9"
_next_account = itertools.count()


@events.init.add_listener
def load_accounts(**_: Any) -> None:
    global ADMIN
    doc = json.loads(Path(os.environ["BENCH_PLATFORM_ACCOUNTS"]).read_text())
    ACCOUNTS.extend(doc["accounts"])
    ADMIN = doc["admin"]


class PlatformUser(FastHttpUser):
    wait_time = between(0.05, 0.15)

    def on_start(self) -> None:
        self.account = dict(ACCOUNTS[next(_next_account) % len(ACCOUNTS)])
        self.same = [
            a for a in ACCOUNTS
            if a["region"] == self.account["region"] and a["username"] != self.account["username"]
        ]  # fmt: skip
        self.other = [a for a in ACCOUNTS if a["region"] != self.account["region"]]

    def _auth(self, **extra: str) -> dict[str, str]:
        return {"authorization": f"Bearer {self.account['access_token']}", **extra}

    # 60: reads of one's own data -------------------------------------------------------

    @task(25)
    def wallet(self) -> None:
        self.client.get("/api/v1/wallet", headers=self._auth(), name="read wallet")

    @task(20)
    def profile(self) -> None:
        self.client.get("/api/v1/users/me", headers=self._auth(), name="read profile")

    @task(15)
    def history(self) -> None:
        self.client.get(
            "/api/v1/wallet/transfers?limit=20", headers=self._auth(), name="read transfers"
        )

    # 20: transfers, a third across regions -----------------------------------------------

    def _transfer(self, to: dict[str, Any], name: str) -> None:
        self.client.post(
            "/api/v1/wallet/transfers",
            json={"to_username": to["username"], "amount": 1, "currency": "USD"},
            headers=self._auth(**{"idempotency-key": uuid.uuid4().hex}),
            name=name,
        )

    @task(13)
    def transfer_same_region(self) -> None:
        self._transfer(random.choice(self.same), "transfer same-region")

    @task(7)
    def transfer_cross_region(self) -> None:
        self._transfer(random.choice(self.other), "transfer cross-region")

    # 10: inbox ---------------------------------------------------------------------------

    @task(10)
    def inbox(self) -> None:
        self.client.get("/api/v1/notices?limit=20", headers=self._auth(), name="read inbox")

    # 9: admins' config and log reads -----------------------------------------------------

    @task(5)
    def config(self) -> None:
        self.client.get(
            "/api/v1/config/namespaces",
            headers={"authorization": f"Bearer {ADMIN}"},
            name="admin read config",
        )

    @task(4)
    def logs(self) -> None:
        self.client.get(
            "/api/v1/logs/records?limit=20",
            headers={"authorization": f"Bearer {ADMIN}"},
            name="admin read logs",
        )

    # 1: registration, login, refresh -------------------------------------------------------

    @task(1)
    def account_work(self) -> None:
        roll = random.random()
        if roll < 0.3:
            region = random.choice(("east", "west"))
            self.client.post(
                "/api/v1/users",
                json={"username": f"n{uuid.uuid4().hex[:12]}", "password": PASSWORD,
                      "region": region},
                name="register",
            )  # fmt: skip
        elif roll < 0.65:
            with self.client.post(
                "/api/v1/auth/login",
                json={"username": self.account["username"], "password": PASSWORD,
                      "client_type": "app"},
                name="login", catch_response=True,
            ) as resp:  # fmt: skip
                if resp.status_code != 200:
                    resp.failure(f"login answered {resp.status_code}")
        else:
            with self.client.post(
                "/api/v1/auth/refresh",
                json={"refresh_token": self.account["refresh_token"]},
                name="refresh", catch_response=True,
            ) as resp:  # fmt: skip
                if resp.status_code == 200:
                    doc = resp.json()
                    self.account["access_token"] = doc["access_token"]
                    self.account["refresh_token"] = doc["refresh_token"]
                else:
                    resp.failure(f"refresh answered {resp.status_code}")
