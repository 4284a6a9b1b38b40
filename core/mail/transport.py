"""Handing one message to the SMTP server: the standard library's EmailMessage and smtplib.

Failures come back as our own short words (``DeliveryError``): the server's reply text can quote
the recipient or the message, and it ends up on a staff page and in the log.
"""
from __future__ import annotations

import smtplib
import socket
import ssl
from email import policy
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from core.mail.models import MailMessage
from core.mail.settings import Smtp

# RFC 5322's line limit: the library's 78 folds a long subject before its first word, which some
# clients then show with a leading space
POLICY = policy.SMTP.clone(max_line_length=998)
TIMEOUT = 15  # seconds: a request that sends after its commit must not hang on a dead server


class DeliveryError(Exception):
    """Why a message was not accepted, in words safe to show and log."""


def build(message: MailMessage, from_header: str) -> EmailMessage:
    email = EmailMessage(policy=POLICY)
    email["From"] = from_header
    email["To"] = message.to_address
    email["Subject"] = message.subject
    email["Date"] = formatdate(localtime=False)
    email["Message-ID"] = make_msgid(domain=from_header.rpartition("@")[2].rstrip(">") or None)
    email.set_content(message.body)
    if message.attachment is not None:
        maintype, _, subtype = (message.attachment_type or "application/octet-stream").partition("/")
        email.add_attachment(message.attachment, maintype=maintype, subtype=subtype,
                             filename=message.attachment_name or "attachment")
    return email


def deliver(server: Smtp, email: EmailMessage) -> None:
    """Send, or raise DeliveryError saying what kind of failure it was."""
    try:
        if server.tls:
            client = smtplib.SMTP_SSL(server.host, server.port, timeout=TIMEOUT,
                                      context=ssl.create_default_context())
        else:
            client = smtplib.SMTP(server.host, server.port, timeout=TIMEOUT)
        with client:
            if server.starttls:
                client.starttls(context=ssl.create_default_context())
            if server.user:
                client.login(server.user, server.password)
            client.send_message(email)
    except smtplib.SMTPAuthenticationError as exc:
        raise DeliveryError(f"the mail server refused our login ({exc.smtp_code})") from None
    except smtplib.SMTPRecipientsRefused as exc:
        codes = sorted({code for code, _text in exc.recipients.values()})
        raise DeliveryError(f"the mail server refused the recipient ({', '.join(map(str, codes))})") from None
    except smtplib.SMTPResponseException as exc:
        kind = "temporarily refused" if 400 <= exc.smtp_code < 500 else "refused"
        raise DeliveryError(f"the mail server {kind} the message ({exc.smtp_code})") from None
    except (ConnectionRefusedError, smtplib.SMTPConnectError):
        raise DeliveryError("the mail server refused the connection") from None
    except (socket.timeout, TimeoutError):
        raise DeliveryError("the mail server did not answer in time") from None
    except ssl.SSLError:
        raise DeliveryError("the TLS handshake with the mail server failed") from None
    except (smtplib.SMTPException, OSError) as exc:
        raise DeliveryError(f"the mail server could not be reached ({type(exc).__name__})") from None
