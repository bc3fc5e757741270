"""auth-rbac: Roles, permissions and assignments on Casbin (RBAC with domains)."""
