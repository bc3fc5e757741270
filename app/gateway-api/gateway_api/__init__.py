"""Edge's gateway (doc/services/gateway-api.md; layers: doc/architecture.md).

Importing it does nothing else: the compiled hot path is switched on by the entry
points, through :func:`gateway_api.native.activate`.
"""
