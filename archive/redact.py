"""Secrets out of everything a person or a log reads: database passwords, webhook tokens.

`redact()` masks the password of any `scheme://user:password@host` in a text and every
known secret value (the settings' database password and webhook URL); `RedactingFilter`
applies it to every log record (message, arguments and traceback) of the handlers it is
put on: the scheduler's, the crawl processes', the CLI's. Error messages and the crash
log pass through `redact()` too (crawler.cli).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from archive.settings import Settings

MASK = "***"
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^:/@\s'\"]*):([^@\s'\"]+)@")


def secret_values(settings: Settings | None = None, database_url: str | None = None) -> list[str]:
    """The secret strings of these settings: the database password, the webhook URL and
    its path (which carries the token of most webhook services)."""
    secrets: list[str] = []
    url = database_url or (settings.database_url if settings else None)
    if url:
        password = urlsplit(url).password if "://" in url else None
        if password:
            secrets.append(password)
    hook = settings.scheduler.alert_webhook_url if settings else None
    if hook:
        secrets.append(hook)
        parts = urlsplit(hook)
        tail = parts.path + (f"?{parts.query}" if parts.query else "")
        if len(tail.strip("/")) >= 6:
            secrets.append(tail)
    return sorted(set(secrets), key=len, reverse=True)  # the longest first


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    text = _USERINFO.sub(rf"\1:{MASK}@", text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    return text


def redact_url(url: str) -> str:
    """A URL as it may be shown: scheme and host, no credentials, path or query."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}/{MASK}" if parts.scheme else MASK


class RedactingFilter(logging.Filter):
    """Masks secrets in the records a handler emits (message, args and traceback)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = list(secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message, self.secrets)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self.secrets)
        return True


def install(secrets: Iterable[str] = (), logger: logging.Logger | None = None) -> None:
    """Put a RedactingFilter on every handler of `logger` (the root logger by default)."""
    secrets = list(secrets)
    for handler in (logger or logging.getLogger()).handlers:
        for old in [f for f in handler.filters if isinstance(f, RedactingFilter)]:
            handler.removeFilter(old)
        handler.addFilter(RedactingFilter(secrets))
