"""Who may call what: authentication, revoked sessions, authorization, signing,
rate limits and trusted proxies."""
