"""Transfers between users, and the history of every movement a user sees."""
