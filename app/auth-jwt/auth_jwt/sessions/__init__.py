"""Sessions: login, refresh-token rotation, logout, single sign-on per client type."""
