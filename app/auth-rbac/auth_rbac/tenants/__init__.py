"""Tenants: Casbin domains with a name, a switch, and members."""
