"""The audit: proof that the ledger is consistent, in this region and across regions."""
