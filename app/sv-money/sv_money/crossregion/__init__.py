"""Transfers whose payee lives in another region: exactly once, across a crash."""
