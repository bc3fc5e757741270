"""The ledger: accounts, the double-entry journal, and the balances kept with it."""
