"""Where a request goes: upstream pools, balancing policies, health checks, breakers,
ejections shared across workers, and users' regions."""
