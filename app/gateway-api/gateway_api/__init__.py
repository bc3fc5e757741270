"""Edge's gateway. Its per-request modules load compiled when a current build exists."""

from gateway_api import native as _native

#: True when the mypyc-compiled hot path is in use (see :mod:`gateway_api.native`).
NATIVE = _native.activate(__path__)
