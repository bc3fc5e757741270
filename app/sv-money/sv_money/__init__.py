"""sv-money: Wallets on a double-entry ledger."""
