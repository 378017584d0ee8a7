"""Alert channels against real receivers on this machine: an aiohttp server on a free port
(Alertmanager-v4 webhook and Slack payloads as received over HTTP), a receiver that is down or
hangs (retries, counted failures, evaluation unaffected), and a real SMTP server (aiosmtpd:
plain, login, STARTTLS and implicit TLS with a self-signed certificate)."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from sibyl.monitoring.alerts import (
    AlertEngine,
    AlertSettings,
    DeliveryOutcome,
    InMemoryRuleRepository,
    MetricFunctions,
    Rule,
    build_alert_engine,
)
from tests.helpers import free_port
from tests.unit.monitoring.alerts.support import at

SENT, RETRIED, FAILED = DeliveryOutcome.SENT, DeliveryOutcome.RETRIED, DeliveryOutcome.FAILED
FAST_DELIVERY = {"timeout_s": 2.0, "attempts": 3, "backoff_s": 0.01, "backoff_max_s": 0.05}
NO_WAIT = {"group_wait_s": 0, "group_interval_s": 0, "repeat_interval_s": "4h"}


# ---- a real HTTP receiver -------------------------------------------------------------------


@dataclass
class Receiver:
    """An aiohttp server recording every POST; answers ``statuses`` in turn (then 200), or
    never answers while ``hang`` is set."""

    url: str
    statuses: list[int] = field(default_factory=list)
    hang: asyncio.Event | None = None
    posts: asyncio.Queue[tuple[str, dict[str, str], Any]] = field(default_factory=asyncio.Queue)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        await self.posts.put((request.path, dict(request.headers), await request.json()))
        self.arrived.set()
        if self.hang is not None:
            await self.hang.wait()
        status = self.statuses.pop(0) if self.statuses else 200
        return web.Response(status=status, text="ok" if status == 200 else "nope")

    async def next(self) -> tuple[str, dict[str, str], Any]:
        """The next POST (within 10 s)."""
        return await asyncio.wait_for(self.posts.get(), 10.0)


@asynccontextmanager
async def receiver(**kwargs: Any) -> AsyncIterator[Receiver]:
    port = free_port()
    r = Receiver(f"http://127.0.0.1:{port}", **kwargs)
    app = web.Application()
    app.router.add_post("/{tail:.*}", r.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield r
    finally:
        if r.hang is not None:
            r.hang.set()
        await runner.cleanup()


def latency_engine(settings: dict[str, Any], **kwargs: Any) -> tuple[AlertEngine, dict[str, float]]:
    """An engine on a settable ``latency_p95_ms`` of model churn with one rule (> 100 ms)."""
    values = {"v": 150.0}
    source = MetricFunctions({"latency_p95_ms": lambda labels, window_s: values["v"]})
    config = AlertSettings.model_validate({"grouping": NO_WAIT, "delivery": FAST_DELIVERY,
                                           **settings})  # fmt: skip
    engine = build_alert_engine(config, InMemoryRuleRepository(), source, **kwargs)
    engine.create_rule(Rule.from_dict({
        "name": "churn:latency_p95", "metric": "latency_p95_ms", "condition": ">",
        "threshold": 100, "labels": {"model": "churn"}, "severity": "critical",
        "message": "p95 of {model} is {value:.0f} ms", "annotations": {"runbook": "https://wiki/{model}"},
    }))  # fmt: skip
    return engine, values


# ---- webhooks -------------------------------------------------------------------------------


def test_alertmanager_and_slack_payloads_reach_a_real_http_receiver() -> None:
    async def main() -> None:
        async with receiver() as hook:
            engine, values = latency_engine({
                "external_url": "http://sibyl.example:8000",
                "channels": {"log": False,
                             "webhooks": [{"url": f"{hook.url}/am", "headers": {"Authorization": "Bearer t0k"}}],
                             "slack": [{"url": f"{hook.url}/slack/T000/B000/XXX", "channel": "#ml"}]},
            })  # fmt: skip
            assert engine.dispatcher is not None
            await engine.tick(at(0))
            received = {path: (headers, body) for path, headers, body in
                        [await hook.next(), await hook.next()]}  # fmt: skip
            headers, am = received["/am"]
            assert headers["Authorization"] == "Bearer t0k"
            assert headers["Content-Type"] == "application/json"
            assert set(am) == {"version", "groupKey", "truncatedAlerts", "status", "receiver",
                               "groupLabels", "commonLabels", "commonAnnotations",
                               "externalURL", "alerts"}  # fmt: skip
            assert (am["version"], am["status"], am["receiver"]) == ("4", "firing", "sibyl")
            assert am["groupKey"] == '{}:{alertname="churn:latency_p95", model="churn"}'
            assert am["groupLabels"] == {"alertname": "churn:latency_p95", "model": "churn"}
            assert am["commonLabels"] == {"alertname": "churn:latency_p95", "model": "churn",
                                          "severity": "critical"}  # fmt: skip
            assert am["commonAnnotations"] == {"summary": "p95 of churn is 150 ms",
                                               "runbook": "https://wiki/churn"}  # fmt: skip
            assert am["externalURL"] == "http://sibyl.example:8000"
            [alert] = am["alerts"]
            assert set(alert) == {"status", "labels", "annotations", "startsAt", "endsAt",
                                  "generatorURL", "fingerprint"}  # fmt: skip
            assert alert["status"] == "firing" and alert["startsAt"] == "2026-01-01T00:00:00Z"
            assert alert["endsAt"] == "0001-01-01T00:00:00Z"
            assert alert["generatorURL"] == (
                "http://sibyl.example:8000/v1/alerts/rules/churn:latency_p95")  # fmt: skip
            _, slack = received["/slack/T000/B000/XXX"]
            assert slack["text"] == "[FIRING:1] alertname=churn:latency_p95, model=churn"
            assert slack["channel"] == "#ml"
            assert slack["attachments"][0]["color"] == "#d00000"
            assert "p95 of churn is 150 ms" in slack["attachments"][0]["blocks"][0]["text"]["text"]

            values["v"] = 80.0
            await engine.tick(at(15))
            resolved = {path: body for path, _, body in [await hook.next(), await hook.next()]}
            am = resolved["/am"]
            assert am["status"] == "resolved" and am["alerts"][0]["status"] == "resolved"
            assert am["alerts"][0]["endsAt"] == "2026-01-01T00:00:15Z"
            assert am["alerts"][0]["fingerprint"] == alert["fingerprint"]
            assert resolved["/slack/T000/B000/XXX"]["attachments"][0]["color"] == "#2eb67d"
            await engine.tick(at(30))  # resolved once: nothing more
            await engine.stop()
            assert hook.posts.empty()
            assert engine.dispatcher.counts() == {("webhook-1", SENT): 2, ("slack-1", SENT): 2}

    asyncio.run(main())


def test_a_receiver_answering_5xx_is_retried_until_it_accepts() -> None:
    async def main() -> None:
        async with receiver(statuses=[503, 500]) as hook:
            outcomes: list[tuple[str, DeliveryOutcome]] = []
            engine, _ = latency_engine(
                {"channels": {"log": False, "webhooks": [{"url": hook.url, "name": "am"}]}},
                on_delivery=lambda c, o: outcomes.append((c, o)))
            await engine.tick(at(0))
            bodies = [await hook.next() for _ in range(3)]
            assert bodies[0][2] == bodies[2][2]  # the same notification, re-sent
            await engine.stop()
            assert outcomes == [("am", RETRIED), ("am", RETRIED), ("am", SENT)]

    asyncio.run(main())


def test_a_receiver_refusing_the_request_is_not_retried() -> None:
    async def main() -> None:
        async with receiver(statuses=[401]) as hook:
            engine, _ = latency_engine(
                {"channels": {"log": False, "webhooks": [{"url": hook.url}]}})
            await engine.tick(at(0))
            await hook.next()
            assert engine.dispatcher is not None
            await engine.dispatcher.drain()
            assert engine.dispatcher.counts() == {("webhook-1", FAILED): 1}
            await engine.stop()

    asyncio.run(main())


def test_a_receiver_that_is_down_costs_retries_and_one_counted_failure_not_evaluation() -> None:
    async def main() -> None:
        down = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens there
        outcomes: list[tuple[str, DeliveryOutcome]] = []
        engine, values = latency_engine(
            {"channels": {"log": False, "webhooks": [{"url": down, "name": "down"}]}},
            on_delivery=lambda c, o: outcomes.append((c, o)))
        assert engine.dispatcher is not None
        assert len(await engine.tick(at(0))) == 1  # firing
        values["v"] = 50.0
        assert [n.status for n in await engine.tick(at(10))] == ["resolved"]
        await engine.dispatcher.drain()
        assert outcomes.count(("down", RETRIED)) == 4 and outcomes.count(("down", FAILED)) == 2
        assert engine.active_alerts() == []  # the state machine went on regardless
        await engine.stop()

    asyncio.run(main())


def test_evaluation_goes_on_while_a_receiver_hangs() -> None:
    async def main() -> None:
        async with receiver(hang=asyncio.Event()) as hook:
            engine, values = latency_engine({
                "channels": {"log": False, "webhooks": [{"url": hook.url}]},
                "delivery": {**FAST_DELIVERY, "timeout_s": 30.0, "attempts": 1},
            })
            assert engine.dispatcher is not None
            await engine.tick(at(0))
            await asyncio.wait_for(hook.arrived.wait(), 10)  # the delivery is stuck in there
            values["v"] = 50.0
            notes = await asyncio.wait_for(engine.tick(at(10)), 5)  # not held up by it
            assert [n.status for n in notes] == ["resolved"]
            assert engine.dispatcher.counts() == {}  # the first delivery has not ended yet
            assert hook.hang is not None
            hook.hang.set()
            await engine.dispatcher.drain()
            assert engine.dispatcher.counts() == {("webhook-1", SENT): 2}
            await engine.stop()

    asyncio.run(main())


def test_the_engine_loop_evaluates_periodically_and_delivers() -> None:
    async def main() -> None:
        async with receiver() as hook:
            engine, values = latency_engine({
                "evaluation_interval_s": 0.05,
                "channels": {"log": False, "webhooks": [{"url": hook.url}]},
            })
            await engine.start()
            _, _, body = await hook.next()
            assert body["status"] == "firing"
            values["v"] = 10.0  # the next evaluations resolve it
            _, _, body = await hook.next()
            assert body["status"] == "resolved"
            await engine.stop()
            await engine.stop()  # idempotent

    asyncio.run(main())


# ---- e-mail over a real SMTP server -----------------------------------------------------------


class Inbox:
    """aiosmtpd handler keeping every message."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], Message]] = []
        self.arrived = threading.Event()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos),
                              message_from_bytes(envelope.original_content)))  # fmt: skip
        self.arrived.set()
        return "250 OK"


def _authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any
                  ) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"sibyl", b"s3cret")
    return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535


@contextmanager
def smtp_server(tls: ssl.SSLContext | None = None, *, implicit: bool = False,
                **kwargs: Any) -> Iterator[tuple[int, Inbox]]:
    inbox, port = Inbox(), free_port()
    if implicit:
        controller = Controller(inbox, hostname="127.0.0.1", port=port, ssl_context=tls, **kwargs)
    else:
        controller = Controller(inbox, hostname="127.0.0.1", port=port, tls_context=tls, **kwargs)
    controller.start()
    try:
        yield port, inbox
    finally:
        controller.stop()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 / localhost (openssl CLI)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)  # fmt: skip
    return cert, key


def server_context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    return context


def send_email(email: dict[str, Any]) -> AlertEngine:
    async def main() -> AlertEngine:
        engine, _ = latency_engine({"channels": {"log": False, "email": [{
            "host": "127.0.0.1", "sender": "sibyl@example.com",
            "recipients": ["oncall@example.com", "ml@example.com"], **email}]}})  # fmt: skip
        await engine.tick(at(0))
        assert engine.dispatcher is not None
        await engine.dispatcher.drain()
        await engine.stop()
        return engine

    return asyncio.run(main())


def test_email_over_plain_smtp() -> None:
    with smtp_server() as (port, inbox):
        engine = send_email({"port": port})
        assert engine.dispatcher is not None
        assert engine.dispatcher.counts() == {("email-1", SENT): 1}
    [(sender, recipients, message)] = inbox.messages
    assert sender == "sibyl@example.com"
    assert recipients == ["oncall@example.com", "ml@example.com"]
    assert message["Subject"] == "[sibyl] [FIRING:1] alertname=churn:latency_p95, model=churn"
    body = message.get_payload(decode=True).decode()  # type: ignore[union-attr]
    assert "FIRING [critical] churn:latency_p95" in body and "p95 of churn is 150 ms" in body


def test_email_with_login() -> None:
    with smtp_server(authenticator=_authenticate, auth_required=True,
                     auth_require_tls=False) as (port, inbox):  # fmt: skip
        engine = send_email({"port": port, "username": "sibyl", "password": "s3cret"})
        assert len(inbox.messages) == 1
        refused = send_email({"port": port, "username": "sibyl", "password": "wrong"})
        assert refused.dispatcher is not None
        assert refused.dispatcher.counts() == {("email-1", FAILED): 1}  # not retried
        assert len(inbox.messages) == 1
    assert engine.dispatcher is not None


def test_email_over_starttls_with_login(certificate: tuple[Path, Path]) -> None:
    tls = server_context(certificate)
    with smtp_server(tls, require_starttls=True, authenticator=_authenticate,
                     auth_required=True) as (port, inbox):  # fmt: skip
        send_email({"port": port, "security": "starttls", "ca_file": str(certificate[0]),
                    "username": "sibyl", "password": "s3cret"})  # fmt: skip
        assert len(inbox.messages) == 1
        untrusted = send_email({"port": port, "security": "starttls"})  # system CAs: refused
        assert untrusted.dispatcher is not None
        assert untrusted.dispatcher.counts()[("email-1", FAILED)] == 1
        assert len(inbox.messages) == 1


def test_email_over_implicit_tls(certificate: tuple[Path, Path]) -> None:
    with smtp_server(server_context(certificate), implicit=True) as (port, inbox):
        send_email({"port": port, "security": "ssl", "ca_file": str(certificate[0])})
        assert inbox.arrived.wait(5) and len(inbox.messages) == 1
