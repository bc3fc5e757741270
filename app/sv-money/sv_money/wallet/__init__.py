"""A user's wallet: their accounts, one per currency."""
