"""sv-config: Configuration centre: namespaces, versioned releases, gray release, push."""
