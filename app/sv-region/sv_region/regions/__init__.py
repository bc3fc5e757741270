"""Regions and the rules that assign new users to them."""
