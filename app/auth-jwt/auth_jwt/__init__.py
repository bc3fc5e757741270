"""auth-jwt: Login, access and refresh tokens, sessions, JWKS and key rotation."""
