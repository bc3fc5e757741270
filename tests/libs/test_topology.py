"""edgelib.topology: the topology file read into typed values, and refused when wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgelib.topology import GatewaySpec, InstanceSpec, TopologyError, load_topology

ROOT = Path(__file__).resolve().parents[2]

GOOD = """
[gateway]
host = "127.0.0.2"
port = 9001
admin_port = 9080

[[regions]]
name = "east"
[[regions]]
name = "west"

[[services]]
name = "sv-region"
instances = [{ port = 9101 }]

[[services]]
name = "sv-user"
region = "east"
instances = [{ port = 9201, weight = 3 }, { url = "http://users.internal:7110/" }]
"""


def _load(tmp_path: Path, text: str) -> object:
    path = tmp_path / "topology.toml"
    path.write_text(text)
    return load_topology(path)


def test_a_topology_reads_into_typed_values(tmp_path: Path) -> None:
    path = tmp_path / "topology.toml"
    path.write_text(GOOD)
    topology = load_topology(path)
    assert topology.gateway == GatewaySpec("127.0.0.2", 9001, 9080)
    assert topology.regions == ("east", "west")
    assert topology.instances == (
        InstanceSpec("sv-region", None, "http://127.0.0.2:9101", 1, 9101),
        InstanceSpec("sv-user", "east", "http://127.0.0.2:9201", 3, 9201),
        InstanceSpec("sv-user", "east", "http://users.internal:7110", 1, None),
    )
    assert [i.id for i in topology.instances] == [
        "sv-region-9101",
        "sv-user-east-9201",
        "sv-user-east-7110",
    ]
    assert topology.services() == ("sv-region", "sv-user")
    assert topology.urls("sv-user", "east") == [
        "http://127.0.0.2:9201",
        "http://users.internal:7110",
    ]
    assert topology.urls("sv-user", "west") == []
    assert list(topology.pools()) == [("sv-region", None), ("sv-user", "east")]


def test_an_empty_topology_has_the_default_gateway(tmp_path: Path) -> None:
    topology = _load(tmp_path, "")
    assert topology == load_topology(tmp_path / "topology.toml")
    assert load_topology(tmp_path / "topology.toml").gateway == GatewaySpec()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[gateway\n", "cannot read topology"),
        ("gateway = 1\n", r"\[gateway\] must be a table"),
        ('[gateway]\nport = "7001"\n', r"\[gateway\] port must be a port number"),
        ("[gateway]\nadmin_port = 70000\n", "admin_port must be a port number"),
        ('[[regions]]\nname = "east"\n[[regions]]\nname = "east"\n', "listed twice"),
        ("[[regions]]\nx = 1\n", "a region needs a name"),
        ("[[services]]\ninstances = []\n", "a service entry has no name"),
        ('[[services]]\nname = "a"\nregion = "mars"\n', "unknown region 'mars'"),
        ('[[services]]\nname = "a"\ninstances = [{ weight = 2 }]\n', "needs a port or a url"),
        ('[[services]]\nname = "a"\ninstances = [{ port = 0 }]\n', "port must be a port"),
        ('[[services]]\nname = "a"\ninstances = [{ port = 9, weight = 0 }]\n', "weight must be"),
        ('[[services]]\nname = "a"\ninstances = [{ url = "ftp://x:1" }]\n', "not an http"),
        ('[[services]]\nname = "a"\ninstances = [{ port = 9 }, { port = 9 }]\n', "have the id a-9"),
        ('[[services]]\nname = "a"\ninstances = { port = 9 }\n', "instances must be an array"),
    ],
)
def test_a_bad_topology_is_refused_with_the_reason(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(TopologyError, match=message):
        _load(tmp_path, text)


def test_a_missing_file_names_its_path(tmp_path: Path) -> None:
    with pytest.raises(TopologyError, match=r"nothing\.toml"):
        load_topology(tmp_path / "nothing.toml")


@pytest.mark.parametrize(
    "path",
    [
        "deploy/local/topology.toml",
        "deploy/compose-topology.toml",
        "deploy/k8s/base/gateway-topology.toml",
    ],
)
def test_the_shipped_topologies_are_valid(path: str) -> None:
    topology = load_topology(ROOT / path)
    assert topology.regions == ("east", "west")
    assert ("sv-notice", "west") in topology.pools()


def test_the_gateway_reads_the_same_format() -> None:
    from gateway_api import topology as gateway_topology

    assert gateway_topology.load_topology is load_topology


def test_instances_on_one_port_of_different_hosts_are_told_apart_by_id(tmp_path: Path) -> None:
    text = (
        '[[services]]\nname = "sv-user"\ninstances = [\n'
        '    { url = "http://a:7110", id = "sv-user-1" },\n'
        '    { url = "http://b:7110", id = "sv-user-2" },\n]\n'
    )
    path = tmp_path / "topology.toml"
    path.write_text(text)
    assert [i.id for i in load_topology(path).instances] == ["sv-user-1", "sv-user-2"]
    path.write_text(text.replace(', id = "sv-user-1"', "").replace(', id = "sv-user-2"', ""))
    with pytest.raises(TopologyError, match="give each its own `id`"):
        load_topology(path)


def test_an_instance_with_a_grpc_port_is_also_an_instance_of_the_grpc_pool(
    tmp_path: Path,
) -> None:
    path = tmp_path / "topology.toml"
    path.write_text(
        '[[regions]]\nname = "east"\n'
        '[[services]]\nname = "sv-money"\nregion = "east"\n'
        "instances = [{ port = 7211, grpc_port = 7215, weight = 2 },"
        ' { url = "http://money-2:7120", grpc_port = 7125 }]\n'
    )
    topology = load_topology(path)
    pools = topology.pools()
    assert [i.url for i in pools[("sv-money", "east")]] == [
        "http://127.0.0.1:7211",
        "http://money-2:7120",
    ]
    twins = pools[("sv-money-grpc", "east")]
    assert [(i.url, i.weight, i.id, i.grpc_of) for i in twins] == [
        ("http://127.0.0.1:7215", 2, "sv-money-east-7211-grpc", "sv-money-east-7211"),
        ("http://money-2:7125", 1, "sv-money-east-7120-grpc", "sv-money-east-7120"),
    ]
