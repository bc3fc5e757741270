"""Email over SMTP (the standard library's client, run in a worker thread)."""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from pydantic import SecretStr

from sv_notice.delivery.channels import DeliveryFailed, DeliveryJob


@dataclass(frozen=True)
class SmtpServer:
    host: str
    port: int
    sender: str
    username: str | None = None
    password: SecretStr | None = None
    starttls: bool = False
    ssl: bool = False
    timeout: float = 10.0


class EmailChannel:
    """Sends the notice as a plain-text message to the user's address."""

    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    def message(self, job: DeliveryJob) -> EmailMessage:
        assert job.email is not None
        msg = EmailMessage()
        msg["From"] = self.server.sender
        msg["To"] = job.email
        msg["Subject"] = job.notice.title
        msg["Date"] = formatdate(localtime=False)
        msg["Message-ID"] = make_msgid(idstring=job.delivery_id, domain="edge.localhost")
        msg["X-Edge-Notice-Id"] = job.notice.id
        msg["X-Edge-Category"] = job.notice.category
        msg.set_content(job.notice.body)
        return msg

    async def send(self, job: DeliveryJob) -> None:
        if not job.email:
            raise DeliveryFailed("no email address is set", permanent=True)
        await asyncio.to_thread(self._send, self.message(job))

    def _send(self, msg: EmailMessage) -> None:
        server = self.server
        try:
            smtp: smtplib.SMTP
            if server.ssl:
                smtp = smtplib.SMTP_SSL(
                    server.host,
                    server.port,
                    timeout=server.timeout,
                    context=ssl.create_default_context(),
                )
            else:
                smtp = smtplib.SMTP(server.host, server.port, timeout=server.timeout)
            with smtp:
                if server.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if server.username and server.password is not None:
                    smtp.login(server.username, server.password.get_secret_value())
                smtp.send_message(msg)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            permanent = all(500 <= code < 600 for code in codes)
            raise DeliveryFailed(
                f"SMTP refused the recipient ({codes})", permanent=permanent
            ) from exc
        except smtplib.SMTPResponseException as exc:
            text = (
                exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else ""
            )
            raise DeliveryFailed(
                f"SMTP {exc.smtp_code}: {text[:200]}", permanent=500 <= exc.smtp_code < 600
            ) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryFailed(f"SMTP unavailable ({type(exc).__name__})") from exc
