#!/usr/bin/python3
"""A real SMTP server for the e-mail tests (Debian's aiosmtpd), started by
tests/src/smtp.rs and run with /usr/bin/python3.

One process, one or more listeners on 127.0.0.1, each given as

    --listen PORT:MODE[:BEHAVIOUR]

MODE is one of
    starttls     STARTTLS offered and required before MAIL; AUTH required,
                 and offered and accepted only after STARTTLS.
    tls          implicit TLS (TLS from the first byte); AUTH required.
    plain-auth   no TLS at all, but AUTH offered and accepted in plaintext
                 (a careful client must not send credentials here).
    no-starttls  plain SMTP: no STARTTLS, no AUTH; mail accepted.

BEHAVIOUR (default: deliver) is one of
    deliver      every message is accepted and saved.
    stall        the connection is accepted (and, for tls, the handshake
                 done) but nothing is ever said: no greeting, no reply.
    stall-data   everything is answered until the end of DATA, whose reply
                 never comes; the message is not saved.
    data=CODE    the end of DATA is answered CODE (e.g. 451, 550); nothing
                 is saved.
    rcpt=CODE    every RCPT TO is answered CODE.

Each delivered message becomes one file in --messages, written to a
temporary name (starting with ".") and renamed, so a reader never sees
half a message. The file holds envelope lines, a blank line, then the
message exactly as received (after dot-unstuffing):

    listener: PORT
    envelope-from: ADDRESS
    envelope-to: ADDRESS        (one line per recipient)

    <message>

Every AUTH attempt is appended to --auth-log as one line
"PORT MECHANISM LOGIN ok|bad".

Prints "ready" on stdout once every listener accepts connections. Exits 75
if a port is taken (the caller picks new ports and tries again).
"""

import argparse
import asyncio
import errno
import logging
import os
import ssl
import sys
import warnings

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

MODES = ("starttls", "tls", "plain-auth", "no-starttls")
EX_TEMPFAIL = 75


class Listener:
    def __init__(self, spec):
        parts = spec.split(":")
        if len(parts) not in (2, 3):
            raise ValueError(f"--listen {spec}: want PORT:MODE[:BEHAVIOUR]")
        self.port = int(parts[0])
        self.mode = parts[1]
        if self.mode not in MODES:
            raise ValueError(f"--listen {spec}: mode must be one of {MODES}")
        behaviour = parts[2] if len(parts) == 3 else "deliver"
        self.stall = behaviour == "stall"
        self.stall_data = behaviour == "stall-data"
        self.data_code = None
        self.rcpt_code = None
        if behaviour.startswith("data="):
            self.data_code = reply_code(behaviour[5:], spec)
        elif behaviour.startswith("rcpt="):
            self.rcpt_code = reply_code(behaviour[5:], spec)
        elif behaviour not in ("deliver", "stall", "stall-data"):
            raise ValueError(f"--listen {spec}: unknown behaviour {behaviour}")


def reply_code(text, spec):
    code = int(text)
    if not 400 <= code <= 599:
        raise ValueError(f"--listen {spec}: a reply code is 4xx or 5xx")
    return code


def reply(code, what):
    kind = "4.3.0 temporary" if code < 500 else "5.7.1 permanent"
    return f"{code} {kind} failure of {what} (test server)"


class Store:
    def __init__(self, messages, auth_log):
        self.messages = messages
        self.auth_log = auth_log
        self.count = 0

    def save(self, port, envelope):
        self.count += 1
        name = f"{self.count:08d}.mail"
        lines = [f"listener: {port}", f"envelope-from: {envelope.mail_from}"]
        lines += [f"envelope-to: {rcpt}" for rcpt in envelope.rcpt_tos]
        head = ("\n".join(lines) + "\n\n").encode()
        temporary = os.path.join(self.messages, "." + name)
        with open(temporary, "wb") as f:
            f.write(head + envelope.original_content)
        os.rename(temporary, os.path.join(self.messages, name))

    def auth(self, port, mechanism, login, ok):
        with open(self.auth_log, "a") as f:
            f.write(f"{port} {mechanism} {login} {'ok' if ok else 'bad'}\n")


class Handler:
    def __init__(self, listener, store):
        self.listener = listener
        self.store = store

    async def handle_RCPT(self, server, session, envelope, address, options):
        if self.listener.rcpt_code is not None:
            return reply(self.listener.rcpt_code, "RCPT")
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.listener.stall_data:
            await asyncio.get_running_loop().create_future()
        if self.listener.data_code is not None:
            return reply(self.listener.data_code, "DATA")
        self.store.save(self.listener.port, envelope)
        return "250 OK: saved"


class Silent(asyncio.Protocol):
    """Accepts a connection and never says anything."""

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        pass


def authenticator(store, port, user, password):
    def check(server, session, envelope, mechanism, auth_data):
        if not isinstance(auth_data, LoginPassword):
            store.auth(port, mechanism, "-", False)
            return AuthResult(success=False, handled=False)
        login = auth_data.login.decode("utf-8", "replace")
        ok = auth_data.login == user and auth_data.password == password
        store.auth(port, mechanism, login or "-", ok)
        return AuthResult(success=ok, handled=False)

    return check


def factory(listener, store, tls, user, password):
    if listener.stall:
        return Silent
    mode = listener.mode
    options = dict(
        hostname="localhost",
        authenticator=authenticator(store, listener.port, user, password),
        # Keep a stalled or slow client from holding a connection forever.
        timeout=60,
    )
    if mode == "starttls":
        options.update(
            tls_context=tls,
            require_starttls=True,
            auth_required=True,
            auth_require_tls=True,
        )
    elif mode == "tls":
        # aiosmtpd sees STARTTLS only: under implicit TLS the whole
        # connection is encrypted, so "require TLS for AUTH" must be off
        # for it to offer AUTH at all.
        options.update(auth_required=True, auth_require_tls=False)
    elif mode == "plain-auth":
        options.update(auth_required=True, auth_require_tls=False)
    elif mode == "no-starttls":
        options.update(auth_required=False, auth_require_tls=True)
    handler = Handler(listener, store)
    return lambda: SMTP(handler, **options)


async def serve(args, listeners):
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(args.cert, args.key)
    store = Store(args.messages, args.auth_log)
    user = args.user.encode()
    password = args.password.encode()
    loop = asyncio.get_running_loop()
    servers = []
    for listener in listeners:
        try:
            servers.append(
                await loop.create_server(
                    factory(listener, store, tls, user, password),
                    host="127.0.0.1",
                    port=listener.port,
                    ssl=tls if listener.mode == "tls" else None,
                    reuse_address=True,
                )
            )
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                print(f"port {listener.port} is taken", file=sys.stderr)
                sys.exit(EX_TEMPFAIL)
            raise
    # create_server returns once the socket listens: connections are
    # accepted (queued by the kernel) from now on.
    print("ready", flush=True)
    # Until killed, or until whoever started us closes our stdin.
    await loop.run_in_executor(None, sys.stdin.buffer.read)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", action="append", required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--messages", required=True)
    parser.add_argument("--auth-log", required=True)
    parser.add_argument("--user", default="mfad")
    parser.add_argument("--password", required=True)
    args = parser.parse_args()
    try:
        listeners = [Listener(spec) for spec in args.listen]
    except ValueError as e:
        parser.error(str(e))
    # The warnings about AUTH without STARTTLS are the point of some
    # listeners; the rest of aiosmtpd's log goes to stderr.
    warnings.simplefilter("ignore")
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    asyncio.run(serve(args, listeners))


if __name__ == "__main__":
    main()
