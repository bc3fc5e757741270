"""Signing keys: generation, encrypted storage, the JWKS, and rotation."""
