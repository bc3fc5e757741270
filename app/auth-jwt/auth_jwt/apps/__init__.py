"""Apps: machine clients of a tenant, with OAuth2 client credentials."""
