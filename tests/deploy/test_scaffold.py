"""``edgectl new-service``: a new service, scaffolded into a copy of the repository.

The copy holds every file git knows (committed or not, never ignored ones). The real
command line scaffolds sv-foo there; then the copy's generated files must be current and
list sv-foo, and sv-foo's own tests, lint and types, the deployment tests and the import
boundaries must pass in the copy, run as separate processes on the copy's code.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import tomllib
import uuid
from pathlib import Path

import httpx
import pytest
import yaml

from edgectl.generate import stale
from edgectl.registry import load_registry
from edgectl.scaffold import ScaffoldError, new_service, plan
from edgelib.topology import load_topology
from tests.e2e.conftest import READY_TIMEOUT
from tests.test_boundaries import violations
from tests.worker import PORT_SHIFT

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def copy_repository(target: Path) -> Path:
    """Every tracked or untracked-but-not-ignored file of the work tree, under ``target``."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout.decode()
    for relative in filter(None, listed.split("\0")):
        source = ROOT / relative
        if source.is_file():
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / relative)
    return target


def run_in(copy: Path, *argv: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    """A process on the copy's code: its libs, tools and services first on the path."""
    paths = [copy / "libs", copy / "tools", *sorted(p for p in (copy / "app").iterdir())]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(map(str, paths))}
    env.pop("PYTEST_XDIST_WORKER", None)
    return subprocess.run(
        argv, cwd=copy, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = copy_repository(tmp_path_factory.mktemp("repo"))
    done = run_in(repo, sys.executable, "-m", "edgectl", "new-service", "sv-foo")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "wrote app/sv-foo/sv_foo/main.py" in done.stdout
    return repo


def test_the_new_service_is_registered_and_every_list_names_it(copy: Path) -> None:
    assert stale(copy) == []
    foo = load_registry(copy / "deploy/services.toml").service("sv-foo")
    assert (foo.package, foo.plane, foo.port, foo.prefix) == ("sv_foo", "regional", 7140, "SV_FOO_")
    assert {r: [i.port for i in lst] for r, lst in foo.local.items()} == {
        "east": [7231],
        "west": [7331],
    }
    topology = load_topology(copy / "deploy/local/topology.toml")
    assert topology.urls("sv-foo", "west") == ["http://127.0.0.1:7331"]
    pyproject = tomllib.loads((copy / "pyproject.toml").read_text())
    assert (
        "app/sv-foo/sv_foo" in pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    )
    assert "sv_foo" in pyproject["tool"]["ruff"]["lint"]["isort"]["known-first-party"]
    assert 'name = "sv-foo"' in (copy / "app/sv-foo/BUILD.bazel").read_text()
    ci = yaml.safe_load((copy / ".gitlab-ci.yml").read_text())
    assert {"SERVICE": "sv-foo", "PACKAGE": "sv_foo"} in ci["build"]["parallel"]["matrix"]
    compose = yaml.safe_load((copy / "deploy/docker-compose.yml").read_text())
    assert compose["services"]["sv-foo-east"]["environment"]["SV_FOO_REGION"] == "east"
    assert "sv-foo-west" in compose["services"]["gateway-api"]["depends_on"]
    regional = yaml.safe_load((copy / "deploy/k8s/base/regional/kustomization.yaml").read_text())
    assert "sv-foo.yaml" in regional["resources"]
    ack = yaml.safe_load((copy / "deploy/k8s/overlays/ack/kustomization.yaml").read_text())
    image = {"name": "edge/sv-foo", "newTag": "0.1.0"}
    image["newName"] = "registry.cn-hangzhou.aliyuncs.com/edge/sv-foo"
    assert image in ack["images"]
    assert (copy / "doc/services/sv-foo.md").is_file()


def pytest_in(copy: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """pytest in one process on the copy (its own pyproject and conftest)."""
    options = ["-p", "no:xdist", "-p", "no:cacheprovider", "-o", "addopts=--strict-markers"]
    return run_in(copy, str(BIN / "pytest"), *options, "-q", *args)


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_the_new_service_passes_its_tests_lint_and_types(copy: Path) -> None:
    # Its own tests, and its migrations up, down and up again on SQLite and PostgreSQL.
    migrations = "tests/integration/test_migrations.py"
    tests = pytest_in(copy, "tests/sv_foo", migrations, "-k", "sv_foo or sv-foo or every")
    assert tests.returncode == 0, tests.stdout[-3000:] + tests.stderr[-2000:]
    assert " passed" in tests.stdout
    lint = run_in(copy, str(BIN / "ruff"), "check", "--no-cache", "app/sv-foo", "tests/sv_foo")
    assert lint.returncode == 0, lint.stdout
    form = run_in(copy, str(BIN / "ruff"), "format", "--no-cache", "--check", "app/sv-foo")
    assert form.returncode == 0, form.stdout
    cache = copy / ".mypy_cache"
    checked = Path(os.environ.get("MYPY_CACHE_DIR") or ROOT / ".mypy_cache")
    if checked.is_dir() and not cache.exists():
        # make test's typecheck ran first: mypy takes over what it checked (it checks each
        # cached file's hash), and reads only sv-foo afresh instead of the whole tree
        # (4 s instead of 55 on a loaded machine).
        shutil.copytree(checked, cache)
    types = run_in(copy, str(BIN / "mypy"), "--cache-dir", str(cache), "app/sv-foo/sv_foo")
    assert types.returncode == 0, types.stdout


@pytest.mark.timeout(300)
def test_the_deployment_tests_pass_with_the_new_service(copy: Path) -> None:
    done = pytest_in(copy, "tests/deploy/test_manifests.py")
    assert done.returncode == 0, done.stdout[-4000:]


def test_the_new_service_keeps_to_its_package(copy: Path) -> None:
    assert violations(copy) == []


def test_a_global_service_gets_the_next_ports() -> None:
    registry = load_registry(ROOT / "deploy/services.toml")
    planned = plan(registry, "sv-bar", "global", None, "x")
    assert (planned.port, planned.local) == (7106, {None: 7106})
    regional = plan(registry, "sv-baz", "regional", 7190, "x")
    assert regional.local == {"east": 7231, "west": 7331}


@pytest.mark.parametrize(
    ("name", "port", "message"),
    [
        ("sv-money", None, "in the registry already"),
        ("Foo", None, "lowercase words"),
        ("svfoo", None, "lowercase words"),
        ("sv-foo", 7120, "port 7120 is taken"),
        ("sv-foo", 7201, "port 7201 is taken"),
    ],
)
def test_a_bad_new_service_is_refused(
    tmp_path: Path, name: str, port: int | None, message: str
) -> None:
    shutil.copytree(ROOT / "deploy", tmp_path / "deploy")
    before = (tmp_path / "deploy/services.toml").read_text()
    with pytest.raises(ScaffoldError, match=message):
        new_service(tmp_path, name, port=port)
    assert (tmp_path / "deploy/services.toml").read_text() == before
    assert not (tmp_path / "app").exists()


def _copy_env(copy: Path) -> dict[str, str]:
    paths = [copy / "libs", copy / "tools", *sorted(p for p in (copy / "app").iterdir())]
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}
    env.pop("PYTEST_XDIST_WORKER", None)
    env["PYTHONPATH"] = os.pathsep.join(map(str, paths))
    # Registrations from 127.0.0.1 are not held back nor limited for this one user.
    env["SV_USER_REGISTRATION_MIN_SECONDS"] = "0"
    return env


@pytest.mark.e2e
@pytest.mark.timeout(READY_TIMEOUT + 240)
def test_the_new_service_starts_in_the_local_stack_and_serves_through_the_gateway(
    copy: Path, tmp_path: Path
) -> None:
    """``edgectl up`` (what ``make up`` runs) in the copy starts sv-foo in both regions;
    the gateway lists it in /cluster and routes a signed-in user's calls to it."""
    topology = tmp_path / "topology.toml"
    text = (copy / "deploy/local/topology.toml").read_text()
    topology.write_text(
        re.sub(r"(port\s*=\s*)(\d+)", lambda m: f"{m[1]}{int(m[2]) + PORT_SHIFT}", text)
    )
    public, admin = f"http://127.0.0.1:{7001 + PORT_SHIFT}", f"http://127.0.0.1:{7080 + PORT_SHIFT}"
    log_path = tmp_path / "edgectl.log"
    argv = [sys.executable, "-m", "edgectl", "--topology", str(topology)]
    argv += ["--var-dir", str(tmp_path / "var"), "up", "--ready-timeout", str(READY_TIMEOUT)]
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            argv, cwd=copy, env=_copy_env(copy), stdout=log, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + READY_TIMEOUT + 15
        while not re.search(r"^All \d+ processes ready", log_path.read_text(), re.M):
            assert proc.poll() is None, log_path.read_text()[-4000:]
            assert time.monotonic() < deadline, log_path.read_text()[-4000:]
            time.sleep(0.2)
        with httpx.Client(timeout=10) as client:
            cluster = client.get(admin + "/cluster").json()
            pools = {p["region"]: p for p in cluster["services"] if p["service"] == "sv-foo"}
            assert set(pools) == {"east", "west"}, cluster["services"]
            assert all(len(p["instances"]) == 1 for p in pools.values())
            name, password = f"foo{uuid.uuid4().hex[:8]}", "correct-horse-battery-9"
            user = {"username": name, "password": password}
            assert client.post(public + "/api/v1/users", json=user).status_code == 201
            login = client.post(public + "/api/v1/auth/login", json=user | {"client_type": "web"})
            assert login.status_code == 200, login.text
            auth = {"authorization": f"Bearer {login.json()['access_token']}"}
            assert client.get(public + "/api/v1/foo/items").status_code == 401
            made = client.post(public + "/api/v1/foo/items", json={"name": "a"}, headers=auth)
            assert made.status_code == 201, made.text
            listed = client.get(public + "/api/v1/foo/items", headers=auth)
            assert [i["name"] for i in listed.json()] == ["a"]
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
