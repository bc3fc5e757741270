"""Region-aware gateway promises on the real stack: weights, and losing an instance under load."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections import Counter

import httpx
import pytest

from tests.e2e.conftest import Stack, instance_id

pytestmark = pytest.mark.e2e

EAST_USER_A = instance_id("sv-user", 7201, "east")  # weight 3 in deploy/local/topology.toml
EAST_USER_B = instance_id("sv-user", 7202, "east")  # weight 1


def _wait_all_up(stack: Stack, client: httpx.Client, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        cluster = client.get(stack.admin + "/cluster").json()
        if all(i["health"] == "up" for p in cluster["services"] for i in p["instances"]):
            return
        time.sleep(0.2)
    raise AssertionError("cluster not healthy")


def test_weights_3_to_1_split_4000_requests_within_5_percent(
    stack: Stack, client: httpx.Client
) -> None:
    _wait_all_up(stack, client)
    counts: Counter[str] = Counter()
    lock = threading.Lock()

    def worker(n: int) -> None:
        with httpx.Client(timeout=5) as c:
            for _ in range(n):
                resp = c.get(stack.public + "/api/v1/users/about")
                assert resp.status_code == 200
                with lock:
                    counts[resp.headers["x-edge-instance"]] += 1

    threads = [threading.Thread(target=worker, args=(500,)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(counts.values()) == 4000
    share_a = counts[EAST_USER_A] / 4000
    assert abs(share_a - 0.75) <= 0.75 * 0.05, counts
    assert abs(counts[EAST_USER_B] / 4000 - 0.25) <= 0.25 * 0.05 + 0.0125, counts


def test_killing_an_east_sv_user_under_get_load_loses_no_request(
    stack: Stack, client: httpx.Client
) -> None:
    _wait_all_up(stack, client)
    stop = threading.Event()
    failures: list[str] = []
    served: Counter[str] = Counter()
    lock = threading.Lock()

    def load() -> None:
        with httpx.Client(timeout=10) as c:
            while not stop.is_set():
                try:
                    resp = c.get(stack.public + "/api/v1/users/about")
                except httpx.HTTPError as exc:
                    with lock:
                        failures.append(repr(exc))
                    continue
                with lock:
                    if resp.status_code != 200:
                        failures.append(f"{resp.status_code} {resp.text[:200]}")
                    else:
                        served[resp.headers["x-edge-instance"]] += 1

    threads = [threading.Thread(target=load) for _ in range(6)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    os.kill(stack.pid(EAST_USER_A), signal.SIGKILL)
    time.sleep(3.0)
    stop.set()
    for t in threads:
        t.join()
    assert failures == []
    assert served[EAST_USER_B] > 0
    assert sum(served.values()) > 100
    _wait_all_up(stack, client)


def test_consistent_hash_keeps_each_east_user_on_one_instance(
    stack: Stack, client: httpx.Client
) -> None:
    _wait_all_up(stack, client)
    seen: dict[str, set[str]] = {}
    for _ in range(8):
        name = f"h{uuid.uuid4().hex[:10]}"
        body = {"username": name, "password": "correct horse 1", "region": "east"}
        assert client.post(stack.public + "/api/v1/users", json=body).status_code == 201
        login = client.post(
            stack.public + "/api/v1/auth/login",
            json={"username": name, "password": "correct horse 1", "client_type": "web"},
        )
        assert login.status_code == 200, login.text
        auth = {"authorization": f"Bearer {login.json()['access_token']}"}
        for _ in range(6):
            resp = client.get(stack.public + "/api/v1/users/me", headers=auth)
            assert resp.status_code == 200, resp.text
            seen.setdefault(name, set()).add(resp.headers["x-edge-instance"])
    assert all(len(instances) == 1 for instances in seen.values()), seen
    assert {i for s in seen.values() for i in s} <= {EAST_USER_A, EAST_USER_B}
