"""Idempotency keys: a retried request finds the result of the first one."""
