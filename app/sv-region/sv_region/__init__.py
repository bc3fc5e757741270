"""sv-region: Directory of regions, clusters and which region each user lives in."""
