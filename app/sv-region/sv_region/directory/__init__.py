"""The user directory: which region each user lives in, and who owns each username.

Registration reserves a username here (``pending``), sv-user confirms it once the
account exists (``active``), or releases it when the registration fails. A pending
reservation older than ``pending_ttl`` counts as abandoned and may be taken over.
"""
