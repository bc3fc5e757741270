# Generated from protos/edge/money/v1/wallet.proto by make protos (grpcio-tools 1.85.1) — do not edit.
# mypy: ignore-errors
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class BalanceRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Account(_message.Message):
    __slots__ = ("currency", "balance", "held", "available")
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    BALANCE_FIELD_NUMBER: _ClassVar[int]
    HELD_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    currency: str
    balance: int
    held: int
    available: int
    def __init__(self, currency: _Optional[str] = ..., balance: _Optional[int] = ..., held: _Optional[int] = ..., available: _Optional[int] = ...) -> None: ...

class BalanceReply(_message.Message):
    __slots__ = ("accounts",)
    ACCOUNTS_FIELD_NUMBER: _ClassVar[int]
    accounts: _containers.RepeatedCompositeFieldContainer[Account]
    def __init__(self, accounts: _Optional[_Iterable[_Union[Account, _Mapping]]] = ...) -> None: ...

class HistoryRequest(_message.Message):
    __slots__ = ("limit",)
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    limit: int
    def __init__(self, limit: _Optional[int] = ...) -> None: ...

class Transfer(_message.Message):
    __slots__ = ("id", "kind", "status", "amount", "fee", "currency", "memo", "from_username", "from_region", "to_username", "to_region", "created_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    FEE_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    MEMO_FIELD_NUMBER: _ClassVar[int]
    FROM_USERNAME_FIELD_NUMBER: _ClassVar[int]
    FROM_REGION_FIELD_NUMBER: _ClassVar[int]
    TO_USERNAME_FIELD_NUMBER: _ClassVar[int]
    TO_REGION_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    kind: str
    status: str
    amount: int
    fee: int
    currency: str
    memo: str
    from_username: str
    from_region: str
    to_username: str
    to_region: str
    created_at: str
    def __init__(self, id: _Optional[str] = ..., kind: _Optional[str] = ..., status: _Optional[str] = ..., amount: _Optional[int] = ..., fee: _Optional[int] = ..., currency: _Optional[str] = ..., memo: _Optional[str] = ..., from_username: _Optional[str] = ..., from_region: _Optional[str] = ..., to_username: _Optional[str] = ..., to_region: _Optional[str] = ..., created_at: _Optional[str] = ...) -> None: ...

class TransferRequest(_message.Message):
    __slots__ = ("idempotency_key", "to_username", "amount", "currency", "memo")
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    TO_USERNAME_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    MEMO_FIELD_NUMBER: _ClassVar[int]
    idempotency_key: str
    to_username: str
    amount: int
    currency: str
    memo: str
    def __init__(self, idempotency_key: _Optional[str] = ..., to_username: _Optional[str] = ..., amount: _Optional[int] = ..., currency: _Optional[str] = ..., memo: _Optional[str] = ...) -> None: ...

class TransferResult(_message.Message):
    __slots__ = ("idempotency_key", "transfer", "replayed", "error", "detail")
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    TRANSFER_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    idempotency_key: str
    transfer: Transfer
    replayed: bool
    error: str
    detail: str
    def __init__(self, idempotency_key: _Optional[str] = ..., transfer: _Optional[_Union[Transfer, _Mapping]] = ..., replayed: _Optional[bool] = ..., error: _Optional[str] = ..., detail: _Optional[str] = ...) -> None: ...

class AuditRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class AuditReply(_message.Message):
    __slots__ = ("region", "ok", "violations", "in_flight")
    REGION_FIELD_NUMBER: _ClassVar[int]
    OK_FIELD_NUMBER: _ClassVar[int]
    VIOLATIONS_FIELD_NUMBER: _ClassVar[int]
    IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    region: str
    ok: bool
    violations: int
    in_flight: int
    def __init__(self, region: _Optional[str] = ..., ok: _Optional[bool] = ..., violations: _Optional[int] = ..., in_flight: _Optional[int] = ...) -> None: ...
