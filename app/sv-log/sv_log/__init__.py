"""sv-log: Central log intake and query."""
