"""Top-ups: money entering a region's ledger, by an administrator."""
