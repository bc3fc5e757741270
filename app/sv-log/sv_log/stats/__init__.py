"""Traffic statistics: the gateways' minute aggregates, rolled up and queried (issue 19)."""
