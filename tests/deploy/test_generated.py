"""deploy/services.toml and what ``make generate`` writes from it.

The tree's generated files and blocks must be what the registry gives: the registry and
the files a block lives in are copied to a temporary directory, generated there, and
compared with the tree. The other tests change a copy and check that the generator
notices, and that a bad registry is refused with a message that names the problem.
"""

from __future__ import annotations

import json
import re
import shutil
import tomllib
from pathlib import Path

import pytest
import yaml

from edgectl.generate import BEGIN, BLOCKS, HEADER, MARK, GenerateError, generate, render, stale
from edgectl.processes import process_specs
from edgectl.registry import RegistryError, default_registry, load_registry, parse_registry
from edgelib.topology import load_topology

ROOT = Path(__file__).resolve().parents[2]
REGISTRY_PATH = ROOT / "deploy" / "services.toml"


def _copy_inputs(target: Path) -> None:
    """The registry and every file holding generated blocks, as they are in the tree."""
    for relative in ["deploy/services.toml", *BLOCKS]:
        (target / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / relative, target / relative)


def test_every_generated_file_is_current(tmp_path: Path) -> None:
    _copy_inputs(tmp_path)
    generate(tmp_path)
    outputs = sorted(render(tmp_path))
    assert len(outputs) >= 20
    differ = [p for p in outputs if (tmp_path / p).read_text() != (ROOT / p).read_text()]
    assert not differ, (
        "generated from deploy/services.toml but edited or stale; run `make generate`:\n"
        + "\n".join(differ)
    )
    assert stale(ROOT) == []


def test_generated_files_say_so() -> None:
    for path, content in render(ROOT).items():
        if path in BLOCKS:
            assert f"# >>> {MARK} (" in content, path
        elif path.endswith(".json"):
            assert json.loads(content)["__comment"] == HEADER.removeprefix("# "), path
        else:
            assert content.splitlines()[0] == HEADER, path


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    _copy_inputs(tmp_path)
    generate(tmp_path)
    return tmp_path


def test_a_hand_edit_of_a_generated_file_or_block_is_found(tree: Path) -> None:
    topology = tree / "deploy/local/topology.toml"
    topology.write_text(topology.read_text().replace("port = 7105", "port = 7199"))
    compose = tree / "deploy/docker-compose.yml"
    compose.write_text(compose.read_text().replace("SV_MONEY_PEERS:", "SV_MONEY_PEERZ:"))
    assert stale(tree) == ["deploy/docker-compose.yml", "deploy/local/topology.toml"]
    assert sorted(generate(tree)) == ["deploy/docker-compose.yml", "deploy/local/topology.toml"]
    assert stale(tree) == []
    assert "SV_MONEY_PEERS:" in compose.read_text()


def test_text_outside_the_blocks_is_kept(tree: Path) -> None:
    env = tree / "deploy/k8s/base/edge.env"
    env.write_text("# a note of the operator\n" + env.read_text() + "EDGE_EXTRA=1\n")
    assert stale(tree) == []
    generate(tree)
    assert env.read_text().startswith("# a note of the operator\n")
    assert env.read_text().endswith("EDGE_EXTRA=1\n")


def test_a_new_region_reaches_every_list(tree: Path) -> None:
    registry = tree / "deploy/services.toml"
    text = registry.read_text().replace(
        '[[regions]]\nname = "west"\n',
        '[[regions]]\nname = "west"\n\n[[regions]]\nname = "north"\n',
    )
    for offset, service in enumerate(("sv-user", "sv-money", "sv-notice")):
        text = re.sub(
            rf'(name = "{service}"\n(?:[^\n]+\n)*?local\.west = [^\n]+\n)',
            rf"\1local.north = [{{ port = {7401 + 10 * offset} }}]\n",
            text,
        )
    registry.write_text(text)
    written = generate(tree)
    assert "deploy/k8s/base/regions/north/kustomization.yaml" in written
    topology = load_topology(tree / "deploy/local/topology.toml")
    assert topology.regions == ("east", "west", "north")
    assert topology.urls("sv-money", "north") == ["http://127.0.0.1:7411"]
    compose = yaml.safe_load((tree / "deploy/docker-compose.yml").read_text())
    assert compose["services"]["sv-notice-north"]["environment"]["SV_NOTICE_REGION"] == "north"
    assert "sv-user-north" in compose["services"]["gateway-api"]["depends_on"]
    env = (tree / "deploy/k8s/base/edge.env").read_text()
    assert 'SV_REGION_REGIONS=["east","west","north"]' in env
    assert '"north":"http://sv-money-north:7120"' in env
    kustomization = yaml.safe_load((tree / "deploy/k8s/base/kustomization.yaml").read_text())
    assert "regions/north" in kustomization["resources"]


def test_a_block_without_its_end_marker_is_refused(tree: Path) -> None:
    ci = tree / ".gitlab-ci.yml"
    ci.write_text(
        re.sub(r"(?m)^ *# <<< end of generated block \(build-matrix\)\n", "", ci.read_text())
    )
    with pytest.raises(GenerateError, match=r"\(build-matrix\) has no end marker"):
        render(tree)


def test_a_missing_block_is_refused(tree: Path) -> None:
    pyproject = tree / "pyproject.toml"
    lines = [line for line in pyproject.read_text().splitlines() if "(mypy-path)" not in line]
    pyproject.write_text("\n".join(lines) + "\n")
    with pytest.raises(GenerateError, match="no generated block for mypy-path"):
        render(tree)
    assert BEGIN.match(f"  # >>> {MARK} (peers)")


# --- the registry itself ---------------------------------------------------------------------


def _registry() -> dict[str, object]:
    return tomllib.loads(REGISTRY_PATH.read_text())


def _service(raw: dict[str, object], name: str) -> dict[str, object]:
    services = raw["services"]
    assert isinstance(services, list)
    return next(s for s in services if s["name"] == name)


def test_the_registry_lists_the_platform() -> None:
    registry = load_registry(REGISTRY_PATH)
    assert registry.regions == ("east", "west")
    assert registry.gateway.name == "gateway-api"
    assert {s.name for s in registry.of_plane("regional")} >= {"sv-user", "sv-money", "sv-notice"}
    for svc in registry.services:
        config = (ROOT / svc.path / svc.package / "config.py").read_text()
        assert f'env_prefix="{svc.prefix}"' in config, svc.name
        assert f"port: int = {svc.port}" in config, svc.name
        assert (ROOT / svc.path / svc.package / "migrations").is_dir() == svc.database, svc.name


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda r: _service(r, "sv-money")["peers"].update(SV_MONEY_X="sv-nope"),
            "names no service",
        ),
        (lambda r: _service(r, "sv-money")["peers"].update(X_URL="sv-region"), "must start with"),
        (
            lambda r: _service(r, "sv-money")["local"].pop("west"),
            "no local instances in region 'west'",
        ),
        (
            lambda r: _service(r, "sv-money").update(
                local={"east": [{"port": 7201}], "west": [{"port": 7311}]}
            ),
            "local port 7201 of sv-money east is taken by sv-user east",
        ),
        (lambda r: _service(r, "sv-log").update(plane="edge"), "plane must be one of"),
        (lambda r: _service(r, "sv-log").update(name="sv_log"), "does not match"),
        (lambda r: r["regions"].append({"name": "east"}), "each once"),
        (lambda r: r["regions"].append("north"), "a [[regions]] entry must be a table"),
        (
            lambda r: _service(r, "sv-log").update(peers=["sv-region"]),
            "sv-log: peers must be a table",
        ),
        (
            lambda r: _service(r, "auth-jwt")["env"].update(AUTH_JWT_X="everything"),
            "env.AUTH_JWT_X",
        ),
        (
            lambda r: _service(r, "sv-log")["replicas"].update(gke=2),
            "replicas.gke: no such overlay",
        ),
    ],
)
def test_a_bad_registry_is_refused_with_the_reason(change: object, message: str) -> None:
    raw = _registry()
    assert callable(change)
    change(raw)
    with pytest.raises(RegistryError, match=re.escape(message)):
        parse_registry(raw)


def test_edgectl_gives_each_service_its_registered_peers() -> None:
    registry = load_registry(REGISTRY_PATH)
    path = ROOT / "deploy/local/topology.toml"
    specs = {s.name: s for s in process_specs(registry, load_topology(path), path, ROOT / "var")}
    money = specs["sv-money-east-7211"]
    assert money.argv[-2:] == ["-m", "sv_money"]
    assert money.env["SV_MONEY_PEERS"] == (
        '{"east":"http://127.0.0.1:7211","west":"http://127.0.0.1:7311"}'
    )
    assert money.env["SV_MONEY_SV_REGION_URL"] == "http://127.0.0.1:7101"
    jwt = specs["auth-jwt-7102"]
    assert jwt.env["AUTH_JWT_ADMIN_REGION"] == "east"
    assert (
        '"east":"http://127.0.0.1:7201,http://127.0.0.1:7202"' in jwt.env["AUTH_JWT_SV_USER_URLS"]
    )
    assert specs["sv-region-7101"].env["SV_REGION_REGIONS"] == '["east","west"]'
    assert specs["gateway-api"].argv[-2:] == ["-m", "gateway_api"]


def test_edgectl_finds_its_own_registry_outside_the_repository(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    assert default_registry() == Path("deploy/services.toml")
    monkeypatch.chdir(tmp_path)
    assert default_registry() == REGISTRY_PATH
    (tmp_path / "deploy").mkdir()
    (tmp_path / "deploy/services.toml").write_text(REGISTRY_PATH.read_text())
    assert default_registry() == Path("deploy/services.toml")
