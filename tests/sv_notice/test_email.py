"""Email reaches a real SMTP server (aiosmtpd, started here), with login, retries and refusals."""

from __future__ import annotations

import email
import logging
from collections.abc import Iterator
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.sv_notice.conftest import (
    TRANSFER_VARS,
    new_user,
    open_notice,
    settings_for,
)
from tests.worker import free_port

SMTP_USER = "edge-mailer"
SMTP_PASSWORD = "smtp-pass-Zq81-never-logged"


class Mailbox:
    """aiosmtpd handler: keeps messages; refuses recipients or fails DATA on request."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], Message]] = []
        self.refuse_rcpt: str | None = None  # e.g. "550 5.1.1 no such user"
        self.fail_data: list[str] = []  # answers for the next DATA commands
        self.logins: list[str] = []

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if self.refuse_rcpt:
            return self.refuse_rcpt
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.fail_data:
            return self.fail_data.pop(0)
        self.messages.append((list(envelope.rcpt_tos), email.message_from_bytes(envelope.content)))
        return "250 Message accepted"

    def authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and data.login.decode() == SMTP_USER
            and data.password.decode() == SMTP_PASSWORD
        )
        if ok:
            self.logins.append(data.login.decode())
        return AuthResult(success=ok, handled=False)


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(
        mailbox,
        hostname="127.0.0.1",
        port=port,
        authenticator=mailbox.authenticate,
        auth_require_tls=False,
    )
    controller.start()
    try:
        yield mailbox, port
    finally:
        controller.stop()


def _smtp_settings(flavour: str, tmp_path: Path, port: int, **extra: Any) -> Any:
    return settings_for(
        flavour,
        tmp_path,
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_username=SMTP_USER,
        smtp_password=SMTP_PASSWORD,
        mail_from="Edge <notices@edge.test>",
        **extra,
    )


async def test_email_is_received_by_a_real_smtp_server(
    flavour: str, tmp_path: Path, smtp: tuple[Mailbox, int], caplog: pytest.LogCaptureFixture
) -> None:
    mailbox, port = smtp
    caplog.set_level(logging.DEBUG)
    async with open_notice(_smtp_settings(flavour, tmp_path, port)) as notice:
        user = new_user()
        contact = await notice.call(
            "PUT",
            "/api/v1/notices/preferences/contact",
            user,
            json={"email": "alice@example.test", "locale": "zh"},
        )
        assert contact.status_code == 200, contact.text
        sent = await notice.send(
            user_id=user.user_id,
            category="wallet.transfer_received",
            variables=TRANSFER_VARS | {"note": "lunch"},
        )
        assert sent.status_code == 202, sent.text
        delivery = await notice.wait_delivered(sent.json()["id"], "email")

    assert delivery["attempts"] == 1
    assert mailbox.logins == [SMTP_USER]
    [(rcpts, msg)] = mailbox.messages
    assert rcpts == ["alice@example.test"]
    assert msg["To"] == "alice@example.test"
    assert msg["From"] == "Edge <notices@edge.test>"
    assert msg["X-Edge-Notice-Id"] == sent.json()["id"]
    subject = str(email.header.make_header(email.header.decode_header(msg["Subject"])))
    assert subject == "您收到了 12.50 EUR"  # the user's locale picked the zh template
    body = msg.get_payload(decode=True).decode()
    assert "bob 向您转账 12.50 EUR" in body
    assert "lunch" in body
    assert "delivery sent" in caplog.text
    assert all(SMTP_PASSWORD not in str(vars(record)) for record in caplog.records)


async def test_temporary_smtp_failures_are_retried_and_permanent_ones_dead_lettered(
    flavour: str, tmp_path: Path, smtp: tuple[Mailbox, int]
) -> None:
    mailbox, port = smtp
    mailbox.fail_data = ["451 4.3.0 try again later", "421 4.3.2 busy"]
    async with open_notice(_smtp_settings(flavour, tmp_path, port)) as notice:
        user = new_user()
        await notice.call(
            "PUT", "/api/v1/notices/preferences/contact", user, json={"email": "a@example.test"}
        )
        sent = await notice.send(
            user_id=user.user_id, category="general", variables={"title": "Hi", "body": "There"}
        )
        delivery = await notice.wait_delivered(sent.json()["id"], "email")
        assert delivery["attempts"] == 3
        assert len(mailbox.messages) == 1

        mailbox.refuse_rcpt = "550 5.1.1 no such user"
        sent = await notice.send(
            user_id=user.user_id, category="general", variables={"title": "Hi", "body": "Again"}
        )
        failed = await notice.wait_delivered(sent.json()["id"], "email", status="failed")
    assert failed["attempts"] == 1
    assert failed["reason"].startswith("SMTP refused the recipient")


async def test_without_smtp_or_address_email_is_suppressed_with_a_reason(
    flavour: str, tmp_path: Path, smtp: tuple[Mailbox, int]
) -> None:
    _mailbox, port = smtp
    async with open_notice(_smtp_settings(flavour, tmp_path, port)) as notice:
        user = new_user()
        sent = await notice.send(
            user_id=user.user_id, category="general", variables={"title": "t", "body": "b"}
        )
        email_delivery = next(d for d in sent.json()["deliveries"] if d["channel"] == "email")
        assert email_delivery["status"] == "suppressed"
        assert email_delivery["reason"] == "no email address is set"
    async with open_notice(settings_for(flavour, tmp_path / "no-smtp")) as notice:
        sent = await notice.send(
            user_id=user.user_id, category="general", variables={"title": "t", "body": "b"}
        )
        email_delivery = next(d for d in sent.json()["deliveries"] if d["channel"] == "email")
        assert email_delivery["reason"] == "the email channel is not configured"


async def test_bad_email_addresses_are_refused(flavour: str, tmp_path: Path) -> None:
    async with open_notice(settings_for(flavour, tmp_path)) as notice:
        user = new_user()
        for bad in ["no-at-sign", "a@b@c", "x@example.test\r\nBcc: evil@example.test", "a b@c.d"]:
            resp = await notice.call(
                "PUT", "/api/v1/notices/preferences/contact", user, json={"email": bad}
            )
            assert resp.status_code == 422, bad
            assert resp.headers["content-type"] == "application/problem+json"
