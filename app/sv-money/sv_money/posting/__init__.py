"""The posting core: what transfers, holds, cross-region transfers and top-ups all book.

It owns the records of movements (``transfers``), holds and the outbox of credits owed
by other regions, and the operations on them that more than one domain needs: reserve
and release a hold's funds, capture a hold into a journal entry, and send a movement
across regions. It builds on :mod:`sv_money.ledger` (the journal and balances) and
:mod:`sv_money.idempotency`; the domains depend on it and never on one another.
"""
