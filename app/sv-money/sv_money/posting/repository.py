"""SQL of the posting core's records: transfers, holds and the cross-region outbox."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    BindParameter,
    Boolean,
    Column,
    Integer,
    Row,
    Table,
    bindparam,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from sv_money.ledger.models import NewEntry
from sv_money.posting.records import (
    HOLD_PENDING,
    Hold,
    HoldStatus,
    OutboxItem,
    Transfer,
    TransferStatus,
)
from sv_money.tables import UTCDateTime, holds, outbox, transfers, utcnow

#: Outbox states.
OUTBOX_PENDING = "pending"
OUTBOX_DONE = "done"

# Built once: statements made per call would cost their construction and cache-key
# computation on every transfer.
_ADD_TRANSFER = insert(transfers)
_GET_TRANSFER = select(transfers).where(transfers.c.id == bindparam("transfer_id"))
_LOCK_TRANSFER = _GET_TRANSFER.with_for_update()
_HOLD_COLUMNS = tuple(c for c in holds.columns if c.name != "account_id")
_GET_HOLD = select(*_HOLD_COLUMNS).where(holds.c.id == bindparam("hold_id"))
_LOCK_HOLD = _GET_HOLD.with_for_update()
_GET_OUTBOX = select(outbox).where(outbox.c.transfer_id == bindparam("transfer_id"))
_LOCK_OUTBOX = _GET_OUTBOX.with_for_update()
# The batched settlement's statements (cross-region transfers, many at a time).
_IDS: BindParameter[list[str]] = bindparam("ids", expanding=True)
_HOLD_NAMES = tuple(c.name for c in _HOLD_COLUMNS)
#: A settlement's rows, locked in one statement: per transfer id (in id order) its outbox
#: row's state, the transfer and its hold (columns ``h_*``); outbox, transfer and hold
#: rows of one transfer are locked together, as the single settlement locks them.
_LOCK_SETTLING = (
    select(outbox.c.state, transfers, *(c.label(f"h_{c.name}") for c in _HOLD_COLUMNS))
    .select_from(
        outbox.join(transfers, transfers.c.id == outbox.c.transfer_id).join(
            holds, holds.c.id == transfers.c.hold_id
        )
    )
    .where(outbox.c.transfer_id.in_(_IDS))
    .order_by(outbox.c.transfer_id)
    .with_for_update()
)
_ADD_HOLD = insert(holds)
_ADD_OUTBOX = insert(outbox)
_SETTLE_TRANSFER = (
    update(transfers)
    .where(transfers.c.id == bindparam("b_transfer_id"))
    .values(
        status=bindparam("b_status"),
        entry_id=bindparam("b_entry_id"),
        failure_reason=bindparam("b_failure_reason"),
        updated_at=bindparam("b_updated_at"),
    )
)
_SETTLE_HOLD = (
    update(holds)
    .where(holds.c.id == bindparam("b_hold_id"))
    .values(
        status=bindparam("b_status"),
        captured=bindparam("b_captured"),
        transfer_id=bindparam("b_transfer_id"),
        updated_at=bindparam("b_updated_at"),
    )
)


def _transfer(row: Row[Any]) -> Transfer:
    return Transfer(**row._mapping)


def outbox_rows(
    many: Sequence[tuple[str, str, str]], *, first_attempt: datetime
) -> list[dict[str, object]]:
    """The outbox rows of ``(transfer id, peer region, credit request as JSON)`` credits."""
    now = utcnow()
    return [
        {
            "transfer_id": transfer_id,
            "peer_region": peer,
            "state": OUTBOX_PENDING,
            "payload": payload,
            "attempts": 0,
            "next_attempt_at": first_attempt,
            "last_error": None,
            "created_at": now,
            "updated_at": now,
        }
        for transfer_id, peer, payload in many
    ]


def _transfer_values(t: Transfer) -> dict[str, object]:
    """The ``transfers`` row of ``t`` (all but ``seq``, which the table numbers)."""
    return {
        "id": t.id,
        "kind": t.kind,
        "status": t.status,
        "payer_id": t.payer_id,
        "payer_username": t.payer_username,
        "payer_region": t.payer_region,
        "payee_id": t.payee_id,
        "payee_username": t.payee_username,
        "payee_region": t.payee_region,
        "amount": t.amount,
        "fee": t.fee,
        "currency": t.currency,
        "memo": t.memo,
        "hold_id": t.hold_id,
        "entry_id": t.entry_id,
        "initiated_by": t.initiated_by,
        "failure_reason": t.failure_reason,
        "created_at": t.created_at,
        "updated_at": t.updated_at,
    }


class TransferRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def add(self, transfer: Transfer) -> None:
        """Insert one transfer."""
        await self.conn.execute(_ADD_TRANSFER, _transfer_values(transfer))

    async def add_many(self, many: Sequence[Transfer]) -> None:
        """Insert transfers in one statement."""
        if many:
            await self.conn.execute(_ADD_TRANSFER, [_transfer_values(t) for t in many])

    async def get(self, transfer_id: str, *, lock: bool = False) -> Transfer | None:
        statement = _LOCK_TRANSFER if lock else _GET_TRANSFER
        row = (await self.conn.execute(statement, {"transfer_id": transfer_id})).first()
        return None if row is None else _transfer(row)

    async def settle_many(self, settled: Sequence[Transfer]) -> None:
        """Write the status, entry and failure reason of ``settled`` transfers."""
        if settled:
            await self.conn.execute(
                _SETTLE_TRANSFER,
                [
                    {
                        "b_transfer_id": t.id,
                        "b_status": t.status,
                        "b_entry_id": t.entry_id,
                        "b_failure_reason": t.failure_reason,
                        "b_updated_at": t.updated_at,
                    }
                    for t in settled
                ],
            )

    async def set_status(
        self,
        transfer_id: str,
        status: TransferStatus,
        *,
        entry_id: int | None = None,
        failure_reason: str | None = None,
    ) -> None:
        """Move the transfer to ``status``, with the entry that settled it or why it failed."""
        values: dict[str, object] = {"status": status, "updated_at": utcnow()}
        if entry_id is not None:
            values["entry_id"] = entry_id
        if failure_reason is not None:
            values["failure_reason"] = failure_reason
        await self.conn.execute(
            update(transfers).where(transfers.c.id == transfer_id).values(values)
        )

    async def history(self, user_id: str, *, before: int | None, limit: int) -> list[Transfer]:
        """The user's movements, newest first, older than sequence number ``before``."""
        statement = select(transfers).where(
            or_(transfers.c.payer_id == user_id, transfers.c.payee_id == user_id)
        )
        if before is not None:
            statement = statement.where(transfers.c.seq < before)
        statement = statement.order_by(transfers.c.seq.desc()).limit(limit)
        return [_transfer(r) for r in await self.conn.execute(statement)]

    async def sent_page(
        self, region: str, to: str, *, after: str | None, limit: int
    ) -> list[Transfer]:
        """Transfers ``region`` made to users of region ``to``, by id, after ``after``."""
        statement = select(transfers).where(
            transfers.c.payer_region == region, transfers.c.payee_region == to
        )
        if after is not None:
            statement = statement.where(transfers.c.id > after)
        statement = statement.order_by(transfers.c.id).limit(limit)
        return [_transfer(r) for r in await self.conn.execute(statement)]

    async def sent(self, region: str, transfer_id: str) -> Transfer | None:
        """One transfer ``region`` made to a user of another region."""
        statement = select(transfers).where(
            transfers.c.id == transfer_id,
            transfers.c.payer_region == region,
            transfers.c.payee_region != region,
        )
        row = (await self.conn.execute(statement)).first()
        return None if row is None else _transfer(row)


class HoldRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def add(self, hold: Hold, *, account_id: int) -> None:
        """Insert ``hold``, reserving on the account ``account_id``."""
        await self.conn.execute(
            insert(holds).values(
                id=hold.id,
                kind=hold.kind,
                status=hold.status,
                account_id=account_id,
                owner_id=hold.owner_id,
                payee_id=hold.payee_id,
                payee_username=hold.payee_username,
                payee_region=hold.payee_region,
                currency=hold.currency,
                amount=hold.amount,
                captured=hold.captured,
                memo=hold.memo,
                transfer_id=hold.transfer_id,
                expires_at=hold.expires_at,
                created_at=hold.created_at,
                updated_at=hold.updated_at,
            )
        )

    async def add_many(self, many: Sequence[tuple[Hold, int]]) -> None:
        """Insert ``(hold, account id it reserves on)`` pairs in one statement."""
        if many:
            await self.conn.execute(
                _ADD_HOLD,
                [
                    {c: getattr(hold, c) for c in _HOLD_NAMES} | {"account_id": account_id}
                    for hold, account_id in many
                ],
            )

    async def settle_many(self, settled: Sequence[Hold]) -> None:
        """Write the status, captured amount and transfer of ``settled`` holds."""
        if settled:
            await self.conn.execute(
                _SETTLE_HOLD,
                [
                    {
                        "b_hold_id": h.id,
                        "b_status": h.status,
                        "b_captured": h.captured,
                        "b_transfer_id": h.transfer_id,
                        "b_updated_at": h.updated_at,
                    }
                    for h in settled
                ],
            )

    async def get(self, hold_id: str, *, lock: bool = False) -> Hold | None:
        statement = _LOCK_HOLD if lock else _GET_HOLD
        row = (await self.conn.execute(statement, {"hold_id": hold_id})).first()
        return None if row is None else Hold(**row._mapping)

    async def set_status(
        self,
        hold_id: str,
        status: HoldStatus,
        *,
        captured: int | None = None,
        transfer_id: str | None = None,
    ) -> None:
        """Move the hold to ``status``; a capture also says how much and by which transfer."""
        values: dict[str, object] = {"status": status, "updated_at": utcnow()}
        if captured is not None:
            values["captured"] = captured
        if transfer_id is not None:
            values["transfer_id"] = transfer_id
        await self.conn.execute(update(holds).where(holds.c.id == hold_id).values(values))

    async def expired(self, now: datetime, *, limit: int) -> list[str]:
        """Ids of pending holds whose time is up, the longest expired first."""
        rows = await self.conn.execute(
            select(holds.c.id)
            .where(holds.c.status == HOLD_PENDING, holds.c.expires_at <= now)
            .order_by(holds.c.expires_at)
            .limit(limit)
        )
        return [str(r[0]) for r in rows]


class OutboxRepository:
    """Credits this region still has to get decided by the payee's region."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def add(
        self, transfer_id: str, *, peer_region: str, payload: str, first_attempt: datetime
    ) -> None:
        now = utcnow()
        await self.conn.execute(
            insert(outbox).values(
                transfer_id=transfer_id,
                peer_region=peer_region,
                state=OUTBOX_PENDING,
                payload=payload,
                attempts=0,
                next_attempt_at=first_attempt,
                created_at=now,
                updated_at=now,
            )
        )

    async def add_many(
        self, many: Sequence[tuple[str, str, str]], *, first_attempt: datetime
    ) -> None:
        """Owe ``(transfer id, peer region, credit request as JSON)`` credits, one statement."""
        if many:
            await self.conn.execute(_ADD_OUTBOX, outbox_rows(many, first_attempt=first_attempt))

    async def lock_settling(self, ids: Sequence[str]) -> list[tuple[str, Transfer, Hold]]:
        """Lock the outbox row, the transfer and its hold of each of ``ids`` that has all
        three, in id order: ``(outbox state, transfer, hold)``."""
        if not ids:
            return []
        rows = await self.conn.execute(_LOCK_SETTLING, {"ids": sorted(ids)})
        found = []
        for row in rows:
            values = row._mapping
            transfer = Transfer(**{c.name: values[c.name] for c in transfers.columns})
            hold = Hold(**{name: values[f"h_{name}"] for name in _HOLD_NAMES})
            found.append((str(values["state"]), transfer, hold))
        return found

    async def close_many(self, ids: Sequence[str]) -> None:
        """The transfers are settled: nothing more to deliver."""
        if ids:
            await self.conn.execute(
                update(outbox)
                .where(outbox.c.transfer_id.in_(bindparam("ids", expanding=True)))
                .values(state=OUTBOX_DONE, updated_at=utcnow()),
                {"ids": list(ids)},
            )

    async def get(self, transfer_id: str, *, lock: bool = False) -> OutboxItem | None:
        statement = _LOCK_OUTBOX if lock else _GET_OUTBOX
        row = (await self.conn.execute(statement, {"transfer_id": transfer_id})).first()
        return None if row is None else OutboxItem(**row._mapping)

    async def postpone(
        self, transfer_id: str, *, attempts: int, next_attempt_at: datetime, last_error: str
    ) -> None:
        """Record a failed delivery and when to try again."""
        await self.conn.execute(
            update(outbox)
            .where(outbox.c.transfer_id == transfer_id)
            .values(
                attempts=attempts,
                next_attempt_at=next_attempt_at,
                last_error=last_error,
                updated_at=utcnow(),
            )
        )

    async def close(self, transfer_id: str) -> None:
        """The transfer is settled: nothing more to deliver."""
        await self.conn.execute(
            update(outbox)
            .where(outbox.c.transfer_id == transfer_id)
            .values(state=OUTBOX_DONE, updated_at=utcnow())
        )

    async def due(self, now: datetime, *, limit: int) -> list[str]:
        rows = await self.conn.execute(
            select(outbox.c.transfer_id)
            .where(outbox.c.state == OUTBOX_PENDING, outbox.c.next_attempt_at <= now)
            .order_by(outbox.c.next_attempt_at)
            .limit(limit)
        )
        return [str(r[0]) for r in rows]

    async def pending_count(self) -> int:
        rows = await self.conn.execute(
            select(func.count()).select_from(outbox).where(outbox.c.state == OUTBOX_PENDING)
        )
        return int(rows.scalar_one())


def _array_type(column_name: str) -> str:
    column = transfers.c[column_name]
    if isinstance(column.type, BigInteger):
        return "bigint[]"
    if isinstance(column.type, UTCDateTime):
        return "timestamptz[]"
    return "varchar[]"


#: The columns of a transfer written with its entry (all but ``seq``, numbered by the
#: table, and ``entry_id``, which comes from the entry written in the same statement).
_BOOKED_COLUMNS = tuple(c.name for c in transfers.columns if c.name not in ("seq", "entry_id"))

#: Everything a batch of booked transfers writes, in one statement and one round trip on
#: PostgreSQL: the balance changes, the entries, their postings and the transfer rows.
#: Rows travel as arrays, so the text is the same for any batch size (prepared once per
#: connection). Entries are matched to postings and transfers by transfer id; each
#: part's row count comes back, so a row lost in a join is an error, never a silence.
_BOOK_PG = text(
    "WITH changed AS ("
    " UPDATE accounts AS a SET balance = a.balance + d.balance, held = a.held + d.held"
    " FROM unnest(CAST(:account_ids AS bigint[]), CAST(:d_balances AS bigint[]),"
    " CAST(:d_helds AS bigint[])) AS d(id, balance, held)"
    " WHERE a.id = d.id RETURNING a.id"
    "), made AS ("
    " INSERT INTO entries (kind, currency, transfer_id, reverses, created_at)"
    " SELECT e.kind, e.currency, e.transfer_id, e.reverses, CAST(:now AS timestamptz)"
    " FROM unnest(CAST(:e_kinds AS varchar[]), CAST(:e_currencies AS varchar[]),"
    " CAST(:e_transfers AS varchar[]), CAST(:e_reverses AS bigint[]))"
    " WITH ORDINALITY AS e(kind, currency, transfer_id, reverses, n)"
    " ORDER BY e.n RETURNING id, transfer_id"
    "), legs AS ("
    " INSERT INTO postings (entry_id, account_id, amount)"
    " SELECT made.id, l.account_id, l.amount"
    " FROM unnest(CAST(:l_transfers AS varchar[]), CAST(:l_accounts AS bigint[]),"
    " CAST(:l_amounts AS bigint[])) WITH ORDINALITY AS l(transfer_id, account_id, amount, n)"
    " JOIN made ON made.transfer_id = l.transfer_id ORDER BY l.n RETURNING 1"
    "), written AS ("
    f" INSERT INTO transfers ({', '.join(_BOOKED_COLUMNS)}, entry_id)"
    f" SELECT {', '.join(f't.{c}' for c in _BOOKED_COLUMNS)}, made.id"
    " FROM unnest("
    + ", ".join(f"CAST(:t_{c} AS {_array_type(c)})" for c in _BOOKED_COLUMNS)
    + f") WITH ORDINALITY AS t({', '.join(_BOOKED_COLUMNS)}, n)"
    " JOIN made ON made.transfer_id = t.id ORDER BY t.n RETURNING 1"
    ")"
    " SELECT made.transfer_id, made.id,"
    " (SELECT count(*) FROM changed), (SELECT count(*) FROM legs),"
    " (SELECT count(*) FROM written)"
    " FROM made"
)


async def book_postgres(
    conn: AsyncConnection,
    changes: Sequence[tuple[int, int, int]],
    planned: Sequence[NewEntry],
    booked: Sequence[Transfer],
) -> dict[str, int]:
    """Write ``planned`` entries (one per transfer of ``booked``, by transfer id), their
    postings, the balance ``changes`` and the transfer rows in one statement; the entry
    id of each transfer. PostgreSQL only."""
    values = [_transfer_values(t) for t in booked]
    params: dict[str, object] = {
        "account_ids": [a for a, _, _ in changes],
        "d_balances": [b for _, b, _ in changes],
        "d_helds": [h for _, _, h in changes],
        "now": utcnow(),
        "e_kinds": [e.kind for e in planned],
        "e_currencies": [e.currency for e in planned],
        "e_transfers": [e.transfer_id for e in planned],
        "e_reverses": [e.reverses for e in planned],
        "l_transfers": [e.transfer_id for e in planned for _ in e.legs],
        "l_accounts": [account_id for e in planned for account_id, _ in e.legs],
        "l_amounts": [amount for e in planned for _, amount in e.legs],
    }
    for column in _BOOKED_COLUMNS:
        params[f"t_{column}"] = [v[column] for v in values]
    rows = (await conn.execute(_BOOK_PG, params)).all()
    entry_ids = {str(transfer_id): int(entry_id) for transfer_id, entry_id, *_ in rows}
    counts = (len(changes), sum(len(e.legs) for e in planned), len(booked))
    written = tuple(int(n) for n in rows[0][2:]) if rows else (0, 0, 0)
    if len(entry_ids) != len(planned) or written != counts:
        raise RuntimeError(f"batch write incomplete: wrote {written}, expected {counts}")
    return entry_ids


#: The payer region's settlement of many cross-region transfers in one statement on
#: PostgreSQL: the balance changes (captures and releases), the capture entries and
#: their postings, the transfers' new status (with the entry or the reason), the holds'
#: and the outbox rows' closing. Rows travel as arrays, as in :data:`_BOOK_PG`; each
#: part's row count comes back and is checked.
_SETTLE_PG = text(
    "WITH changed AS ("
    " UPDATE accounts AS a SET balance = a.balance + d.balance, held = a.held + d.held"
    " FROM unnest(CAST(:account_ids AS bigint[]), CAST(:d_balances AS bigint[]),"
    " CAST(:d_helds AS bigint[])) AS d(id, balance, held)"
    " WHERE a.id = d.id RETURNING a.id"
    "), made AS ("
    " INSERT INTO entries (kind, currency, transfer_id, reverses, created_at)"
    " SELECT e.kind, e.currency, e.transfer_id, NULL, CAST(:now AS timestamptz)"
    " FROM unnest(CAST(:e_kinds AS varchar[]), CAST(:e_currencies AS varchar[]),"
    " CAST(:e_transfers AS varchar[])) WITH ORDINALITY AS e(kind, currency, transfer_id, n)"
    " ORDER BY e.n RETURNING id, transfer_id"
    "), legs AS ("
    " INSERT INTO postings (entry_id, account_id, amount)"
    " SELECT made.id, l.account_id, l.amount"
    " FROM unnest(CAST(:l_transfers AS varchar[]), CAST(:l_accounts AS bigint[]),"
    " CAST(:l_amounts AS bigint[])) WITH ORDINALITY AS l(transfer_id, account_id, amount, n)"
    " JOIN made ON made.transfer_id = l.transfer_id ORDER BY l.n RETURNING 1"
    "), settled AS ("
    " UPDATE transfers AS t SET status = s.status, failure_reason = s.reason,"
    " entry_id = made.id, updated_at = CAST(:now AS timestamptz)"
    " FROM unnest(CAST(:s_ids AS varchar[]), CAST(:s_statuses AS varchar[]),"
    " CAST(:s_reasons AS varchar[])) AS s(id, status, reason)"
    " LEFT JOIN made ON made.transfer_id = s.id"
    " WHERE t.id = s.id RETURNING t.id, t.entry_id"
    "), closed_holds AS ("
    " UPDATE holds AS h SET status = x.status, captured = x.captured,"
    " updated_at = CAST(:now AS timestamptz)"
    " FROM unnest(CAST(:h_ids AS varchar[]), CAST(:h_statuses AS varchar[]),"
    " CAST(:h_captured AS bigint[])) AS x(id, status, captured)"
    " WHERE h.id = x.id RETURNING 1"
    "), closed AS ("
    " UPDATE outbox SET state = 'done', updated_at = CAST(:now AS timestamptz)"
    " WHERE transfer_id = ANY(CAST(:s_ids AS varchar[])) RETURNING 1"
    ")"
    " SELECT settled.id, settled.entry_id, (SELECT count(*) FROM changed),"
    " (SELECT count(*) FROM legs), (SELECT count(*) FROM closed_holds),"
    " (SELECT count(*) FROM closed)"
    " FROM settled"
)


async def settle_postgres(
    conn: AsyncConnection,
    changes: Sequence[tuple[int, int, int]],
    planned: Sequence[NewEntry],
    settled: Sequence[Transfer],
    closed: Sequence[Hold],
    *,
    now: datetime,
) -> dict[str, int | None]:
    """Write a settlement of cross-region transfers in one statement: the balance
    ``changes``, the ``planned`` capture entries (one per completed transfer, by transfer
    id) and their postings, the ``settled`` transfers' status and reason, the ``closed``
    holds, and their outbox rows closed; each transfer's entry id. PostgreSQL only."""
    params: dict[str, object] = {
        "now": now,
        "account_ids": [a for a, _, _ in changes],
        "d_balances": [b for _, b, _ in changes],
        "d_helds": [h for _, _, h in changes],
        "e_kinds": [e.kind for e in planned],
        "e_currencies": [e.currency for e in planned],
        "e_transfers": [e.transfer_id for e in planned],
        "l_transfers": [e.transfer_id for e in planned for _ in e.legs],
        "l_accounts": [account_id for e in planned for account_id, _ in e.legs],
        "l_amounts": [amount for e in planned for _, amount in e.legs],
        "s_ids": [t.id for t in settled],
        "s_statuses": [t.status for t in settled],
        "s_reasons": [t.failure_reason for t in settled],
        "h_ids": [h.id for h in closed],
        "h_statuses": [h.status for h in closed],
        "h_captured": [h.captured for h in closed],
    }
    rows = (await conn.execute(_SETTLE_PG, params)).all()
    entry_of = {str(t): None if e is None else int(e) for t, e, *_ in rows}
    expected = (len(changes), sum(len(e.legs) for e in planned), len(closed), len(settled))
    written = tuple(int(n) for n in rows[0][2:]) if rows else (0, 0, 0, 0)
    entries = sum(1 for e in entry_of.values() if e is not None)
    if len(entry_of) != len(settled) or written != expected or entries != len(planned):
        raise RuntimeError(f"settlement incomplete: wrote {written}, expected {expected}")
    return entry_of


def _pg_array(column: Column[Any]) -> str:
    if isinstance(column.type, BigInteger):
        return "bigint[]"
    if isinstance(column.type, Integer):
        return "integer[]"
    if isinstance(column.type, UTCDateTime):
        return "timestamptz[]"
    if isinstance(column.type, Boolean):
        return "boolean[]"
    return "varchar[]"


def _insert_from_arrays(table: Table, columns: Sequence[str], prefix: str) -> str:
    """``INSERT INTO table (columns) SELECT ... FROM unnest(:prefix<column> arrays)``."""
    names = ", ".join(columns)
    arrays = ", ".join(f"CAST(:{prefix}{c} AS {_pg_array(table.c[c])})" for c in columns)
    return f"INSERT INTO {table.name} ({names}) SELECT {names} FROM unnest({arrays}) AS r({names})"


_HOLD_ROW = tuple(c.name for c in holds.columns)
_TRANSFER_ROW = tuple(c.name for c in transfers.columns if c.name != "seq")
_OUTBOX_ROW = tuple(c.name for c in outbox.columns)

#: The first step of many cross-region transfers in one statement on PostgreSQL: the
#: reservations on the payers' accounts, the holds, the pending transfers and the outbox
#: rows (arrays, so one text for any batch size; each part's row count checked).
_SEND_PG = text(
    "WITH changed AS ("
    " UPDATE accounts AS a SET held = a.held + d.held"
    " FROM unnest(CAST(:account_ids AS bigint[]), CAST(:d_helds AS bigint[])) AS d(id, held)"
    " WHERE a.id = d.id RETURNING a.id"
    f"), new_holds AS ({_insert_from_arrays(holds, _HOLD_ROW, 'h_')} RETURNING 1"
    f"), new_transfers AS ({_insert_from_arrays(transfers, _TRANSFER_ROW, 't_')} RETURNING 1"
    f"), owed AS ({_insert_from_arrays(outbox, _OUTBOX_ROW, 'o_')} RETURNING 1"
    ") SELECT (SELECT count(*) FROM changed), (SELECT count(*) FROM new_holds),"
    " (SELECT count(*) FROM new_transfers), (SELECT count(*) FROM owed)"
)


async def send_postgres(
    conn: AsyncConnection,
    held: Sequence[tuple[int, int]],
    reserved: Sequence[tuple[Hold, int]],
    pending: Sequence[Transfer],
    owed: Sequence[dict[str, object]],
) -> None:
    """Write the first step of cross-region transfers in one statement: ``(account id,
    held delta)`` reservations, the holds (with the account each reserves on), the
    pending transfers and the outbox rows. PostgreSQL only."""
    hold_rows = [
        {c: getattr(h, c) for c in _HOLD_NAMES} | {"account_id": account_id}
        for h, account_id in reserved
    ]
    transfer_rows = [_transfer_values(t) for t in pending]
    params: dict[str, object] = {
        "account_ids": [a for a, _ in held],
        "d_helds": [h for _, h in held],
    }
    for prefix, names, rows in (
        ("h_", _HOLD_ROW, hold_rows),
        ("t_", _TRANSFER_ROW, transfer_rows),
        ("o_", _OUTBOX_ROW, owed),
    ):
        for name in names:
            params[f"{prefix}{name}"] = [row[name] for row in rows]
    counts = tuple(int(n) for n in (await conn.execute(_SEND_PG, params)).one())
    expected = (len(held), len(reserved), len(pending), len(owed))
    if counts != expected:
        raise RuntimeError(f"send write incomplete: wrote {counts}, expected {expected}")
