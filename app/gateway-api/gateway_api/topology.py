"""The topology file: the platform's format, owned by :mod:`edgelib.topology`."""

from edgelib.topology import GatewaySpec, InstanceSpec, Topology, TopologyError, load_topology

__all__ = ["GatewaySpec", "InstanceSpec", "Topology", "TopologyError", "load_topology"]
