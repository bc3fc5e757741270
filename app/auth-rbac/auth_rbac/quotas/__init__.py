"""Quotas and flow limits the gateways enforce (issue 19, item 3)."""
