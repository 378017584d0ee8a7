"""Where notifications go. A :class:`Channel` sends one :class:`Notification` or raises
:class:`DeliveryError`; timeouts, retries and counting are the :class:`Dispatcher`'s job, so a
channel makes exactly one attempt per ``send`` call.

* :class:`LogChannel` — a structlog event (``error`` for critical, ``warning`` for firing,
  ``info`` for resolved); never fails.
* :class:`WebhookChannel` — POSTs the Alertmanager v4 body (see ``_payloads``).
* :class:`SlackChannel` — POSTs a Slack incoming-webhook body.
* :class:`EmailChannel` — SMTP (plain, STARTTLS or implicit TLS; optional login) through
  ``smtplib`` in a worker thread.

HTTP channels share nothing: each owns an ``httpx.AsyncClient`` created on first use (in the
running loop) and closed by :meth:`aclose`.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from collections.abc import Mapping, Sequence
from email.message import EmailMessage
from typing import Any, Literal, Protocol

import httpx
import structlog

from sibyl.monitoring.alerts._grouping import Notification
from sibyl.monitoring.alerts._payloads import alertmanager_payload, email_message, slack_payload
from sibyl.monitoring.alerts._rules import Severity


class DeliveryError(Exception):
    """One delivery attempt failed; ``retryable`` is false when retrying cannot help (the
    receiver refused the request as malformed, unauthorised …)."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class Channel(Protocol):
    """Sends notifications somewhere. One instance is used by one dispatcher worker task."""

    @property
    def name(self) -> str:
        """Unique among the dispatcher's channels (the ``channel`` of delivery counts)."""
        ...

    async def send(self, notification: Notification) -> None:
        """One attempt; raises :class:`DeliveryError` (or any exception) when it failed."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


class LogChannel:
    """Notifications as structlog events on the ``sibyl.alerts`` logger."""

    def __init__(self, name: str = "log") -> None:
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    async def send(self, notification: Notification) -> None:
        alerts = [
            {"rule": a.rule, "state": a.state.value, "labels": dict(a.labels),
             "summary": a.annotations.get("summary", "")}
            for a in notification.alerts
        ]  # fmt: skip
        critical = any(a.severity is Severity.CRITICAL for a in notification.firing)
        # a logger per notification: the process's logging configuration as it is now (a
        # module-level logger caches the configuration it first saw)
        logger = structlog.get_logger("sibyl.alerts")
        emit = (
            logger.info if not notification.firing else logger.error if critical else logger.warning
        )
        emit("alert_notification", title=notification.title(), group_key=notification.group_key,
             status=notification.status, alerts=alerts)  # fmt: skip

    async def aclose(self) -> None:
        return None


class _HTTPChannel:
    """POSTs a JSON body; 2xx is success, 408/429/5xx and transport errors are retryable."""

    def __init__(
        self, url: str, *, name: str, timeout_s: float, headers: Mapping[str, str] | None
    ) -> None:
        self._url, self._name, self._timeout_s = url, name, timeout_s
        self._headers = dict(headers or {})
        self._client: httpx.AsyncClient | None = None

    @property
    def name(self) -> str:
        return self._name

    def _body(self, notification: Notification) -> dict[str, Any]:
        raise NotImplementedError

    async def send(self, notification: Notification) -> None:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self._timeout_s, headers=self._headers)
        try:
            response = await self._client.post(self._url, json=self._body(notification))
        except httpx.HTTPError as error:
            raise DeliveryError(f"POST {self._safe_url()} failed: {error!r}") from error
        if not response.is_success:
            code = response.status_code
            raise DeliveryError(
                f"POST {self._safe_url()} answered {code}: {response.text[:200]}",
                retryable=code in (408, 429) or code >= 500,
            )

    def _safe_url(self) -> str:
        # Slack webhook URLs carry their secret in the path: show the host only
        url = httpx.URL(self._url)
        return f"{url.scheme}://{url.host}{':' + str(url.port) if url.port else ''}/…"

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


class WebhookChannel(_HTTPChannel):
    """The Alertmanager v4 webhook body to ``url`` (``max_alerts > 0`` truncates)."""

    def __init__(
        self, url: str, *, name: str = "webhook", receiver: str = "sibyl",
        external_url: str | None = None, max_alerts: int = 0, timeout_s: float = 10.0,
        headers: Mapping[str, str] | None = None,
    ) -> None:  # fmt: skip
        super().__init__(url, name=name, timeout_s=timeout_s, headers=headers)
        self._receiver, self._external_url, self._max_alerts = receiver, external_url, max_alerts

    def _body(self, notification: Notification) -> dict[str, Any]:
        return alertmanager_payload(
            notification, receiver=self._receiver, external_url=self._external_url,
            max_alerts=self._max_alerts,
        )  # fmt: skip


class SlackChannel(_HTTPChannel):
    """A Slack incoming-webhook body to ``url`` (Mattermost and Rocket.Chat accept it too)."""

    def __init__(
        self, url: str, *, name: str = "slack", channel: str | None = None,
        username: str | None = None, icon_emoji: str | None = None,
        external_url: str | None = None, timeout_s: float = 10.0,
    ) -> None:  # fmt: skip
        super().__init__(url, name=name, timeout_s=timeout_s, headers=None)
        self._extras = {"channel": channel, "username": username, "icon_emoji": icon_emoji}
        self._external_url = external_url

    def _body(self, notification: Notification) -> dict[str, Any]:
        return slack_payload(notification, external_url=self._external_url, **self._extras)


SMTPSecurity = Literal["none", "starttls", "ssl"]


class EmailChannel:
    """Plain-text e-mail over SMTP; ``security``: ``none``, ``starttls`` (upgrade after
    connecting, typically port 587) or ``ssl`` (implicit TLS, typically 465). Certificates are
    verified against the system CAs, or ``ca_file`` when given."""

    def __init__(
        self, host: str, port: int, *, sender: str, recipients: Sequence[str],
        name: str = "email", security: SMTPSecurity = "none", username: str | None = None,
        password: str | None = None, ca_file: str | None = None, timeout_s: float = 10.0,
        subject_prefix: str = "[sibyl]", external_url: str | None = None,
    ) -> None:  # fmt: skip
        self._host, self._port, self._security = host, port, security
        self._sender, self._recipients = sender, list(recipients)
        self._name, self._username, self._password = name, username, password
        self._ca_file, self._timeout_s = ca_file, timeout_s
        self._prefix, self._external_url = subject_prefix, external_url

    @property
    def name(self) -> str:
        return self._name

    async def send(self, notification: Notification) -> None:
        message = email_message(
            notification, sender=self._sender, recipients=self._recipients,
            subject_prefix=self._prefix, external_url=self._external_url,
        )  # fmt: skip
        try:
            await asyncio.to_thread(self._send_sync, message)
        except smtplib.SMTPAuthenticationError as error:
            raise DeliveryError(f"SMTP login to {self._where()} refused: {error}",
                                retryable=False) from error  # fmt: skip
        except (smtplib.SMTPException, OSError) as error:
            raise DeliveryError(f"SMTP delivery via {self._where()} failed: {error!r}") from error

    def _where(self) -> str:
        return f"{self._host}:{self._port}"

    def _send_sync(self, message: EmailMessage) -> None:
        context = ssl.create_default_context(cafile=self._ca_file)
        smtp: smtplib.SMTP
        if self._security == "ssl":
            smtp = smtplib.SMTP_SSL(self._host, self._port, timeout=self._timeout_s,
                                    context=context)  # fmt: skip
        else:
            smtp = smtplib.SMTP(self._host, self._port, timeout=self._timeout_s)
        with smtp:
            if self._security == "starttls":
                smtp.starttls(context=context)
            if self._username:
                smtp.login(self._username, self._password or "")
            smtp.send_message(message)

    async def aclose(self) -> None:
        return None
