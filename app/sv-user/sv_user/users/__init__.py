"""Accounts: registration, profiles, passwords and credential checks."""
