"""The platform's own services, as ``deploy/services.toml`` lists them.

Internal endpoints that any platform service may call (sv-config's watch, for one) list
these as their callers; a service added with ``edgectl new-service`` joins the list when
``make generate`` runs. A deployment's own services that are not in the registry are
named in the endpoint owner's settings (``SV_CONFIG_WATCH_CALLERS``, for example).
"""

from __future__ import annotations

# >>> generated from deploy/services.toml by make generate — do not edit (services)
PLATFORM_SERVICES = frozenset(
    {
        "gateway-api",
        "sv-region",
        "auth-jwt",
        "auth-rbac",
        "sv-config",
        "sv-log",
        "sv-user",
        "sv-money",
        "sv-notice",
    }
)
# <<< end of generated block (services)
