"""A real SMTP server for Muster's tests (aiosmtpd, from PyPI), on loopback.

Usage: server.py OUT_FILE [--auth USER:PASSWORD]

Listens on a free port of 127.0.0.1, prints "ready PORT" once it accepts connections, and appends
each message it accepts to OUT_FILE as one JSON line: envelope sender and recipients, and the
message as Python's email package reads it (subject, the text/plain and text/html parts). With
--auth, AUTH PLAIN/LOGIN with that user and password is required before MAIL.
"""

import asyncio
import email
import email.policy
import json
import socket
import sys

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Recorder:
    def __init__(self, path):
        self.path = path

    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        parts = {}
        for part in msg.walk():
            ctype = part.get_content_type()
            if ctype in ("text/plain", "text/html"):
                parts[ctype] = part.get_content()
        record = {
            "from": envelope.mail_from,
            "to": envelope.rcpt_tos,
            "subject": str(msg["subject"]),
            "header_from": str(msg["from"]),
            "multipart": msg.get_content_type(),
            "text": parts.get("text/plain", ""),
            "html": parts.get("text/html", ""),
            "auth": session.authenticated,
        }
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        return "250 OK queued as test"


def main():
    out = sys.argv[1]
    creds = None
    if len(sys.argv) > 3 and sys.argv[2] == "--auth":
        user, password = sys.argv[3].split(":", 1)
        creds = (user.encode(), password.encode())

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == creds
        return AuthResult(success=ok)

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    kwargs = {}
    if creds:
        kwargs = {"authenticator": authenticator, "auth_required": True, "auth_require_tls": False}
    controller = Controller(Recorder(out), hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    print(f"ready {port}", flush=True)
    try:
        asyncio.get_event_loop().run_forever()
    except KeyboardInterrupt:
        pass
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
