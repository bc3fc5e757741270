"""sv-user: Accounts, profiles and credentials of one region's users."""
