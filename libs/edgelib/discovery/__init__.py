"""Live discovery: instances register in etcd; watchers follow etcd or EndpointSlices.

* :class:`Registrar` keeps one instance's key (``<prefix>/<service>/<region>/<instance>``)
  alive under a lease; a graceful stop revokes it before draining.
* :class:`EtcdWatcher` and :class:`EndpointSliceWatcher` keep a :class:`Membership`: the
  members per (service, region) pool, change events, and whether the view is current.
* :func:`open_source` makes the watcher a region's ``discovery`` value names
  (``static``, ``etcd:<prefix>``, ``k8s:<namespace>``).

doc/discovery.md has the settings, the key layout and the behaviours.
"""

from edgelib.discovery.etcd import EtcdClient, EtcdCompacted, EtcdError
from edgelib.discovery.model import Member, Membership, MembershipEvent, PoolKey
from edgelib.discovery.registrar import GLOBAL_REGION, Registrar, member_key
from edgelib.discovery.sources import MembershipSource, SourceSpec, open_source, parse_source
from edgelib.discovery.watcher import EtcdWatcher

__all__ = [
    "GLOBAL_REGION",
    "EtcdClient",
    "EtcdCompacted",
    "EtcdError",
    "EtcdWatcher",
    "Member",
    "Membership",
    "MembershipEvent",
    "MembershipSource",
    "PoolKey",
    "Registrar",
    "SourceSpec",
    "member_key",
    "open_source",
    "parse_source",
]
