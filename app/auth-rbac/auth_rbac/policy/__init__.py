"""Policy: roles, permissions (p rules) and assignments (g rules), and their decisions."""
