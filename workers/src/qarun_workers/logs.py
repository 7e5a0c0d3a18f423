"""Logging set-up for every role, with a last line of defence against leaked secrets.

Secrets are kept out of log calls in the first place (SecretStr settings, no headers
logged); the filter below also scrubs anything that looks like a bearer token, an
API key or a password in a URL, in case a library logs one at DEBUG level.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable

PATTERNS = (
    re.compile(r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?)(bearer\s+)?[^\s\"',}]+"),
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"),
    re.compile(r"()\bsk-[A-Za-z0-9_-]{8,}"),
    re.compile(r"(?i)(api[_-]?key[\"']?\s*[:=]\s*[\"']?)[^\s\"',}]+"),
    re.compile(r"(://[^:/@\s]+:)[^@\s]+(?=@)"),
)


class RedactSecrets(logging.Filter):
    """Rewrites each record's message with known secrets and secret-looking text masked."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if len(s) >= 4]

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        for pattern in PATTERNS:
            text = pattern.sub(r"\1***", text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = self.redact(message)
        if clean != message or record.args:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = self.redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


def setup(level: str = "INFO", secrets: Iterable[str] = ()) -> None:
    """Log to stderr in one line per record; the redaction filter sits on the handler."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactSecrets(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("httpx", "httpx2", "httpcore", "openai", "aiohttp.access"):
        if level.upper() != "DEBUG":
            logging.getLogger(noisy).setLevel(logging.WARNING)
