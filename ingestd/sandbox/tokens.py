"""Access tokens of the emulated account (symbl-api.md §2).

The real service hands back the *same* token with the remaining lifetime while it is still
valid; clients that cache tokens, or that forget to, must both see that behaviour.
"""

from __future__ import annotations

import base64
import json
import math
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Token:
    value: str
    account: str
    expires_at: float
    """time.monotonic() deadline."""


class TokenStore:
    """Issues, caches and validates opaque JWT-shaped tokens (thread-safe)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens: dict[str, Token] = {}
        self._current: dict[str, Token] = {}
        self.generations = 0
        self.issued = 0

    def generate(self, account: str, lifetime: float) -> tuple[str, int]:
        """The account's token and its remaining whole seconds (a new token once expired)."""
        with self._lock:
            now = self._clock()
            self.generations += 1
            token = self._current.get(account)
            if token is not None:
                remaining = math.floor(token.expires_at - now)
                if remaining >= 1:
                    return token.value, remaining
            token = Token(_new_jwt(account, lifetime), account, now + lifetime)
            self._tokens[token.value] = token
            self._current[account] = token
            self.issued += 1
            return token.value, max(1, math.floor(lifetime))

    def account_for(self, value: str | None) -> str | None:
        """The account a still-valid token belongs to, else None."""
        if not value:
            return None
        with self._lock:
            token = self._tokens.get(value)
            if token is None:
                return None
            if token.expires_at <= self._clock():
                del self._tokens[value]
                return None
            return token.account

    def expire_all(self) -> None:
        """Make every issued token invalid now (the ``expire_tokens`` fault)."""
        with self._lock:
            self._tokens.clear()
            self._current.clear()

    def reset(self) -> None:
        with self._lock:
            self._tokens.clear()
            self._current.clear()
            self.generations = 0
            self.issued = 0


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _new_jwt(account: str, lifetime: float) -> str:
    """Three base64url parts like a JWT; the signature is random, so tokens never repeat."""
    now = int(time.time())
    header = {"alg": "RS256", "typ": "JWT"}
    claims = {
        "appId": account,
        "iat": now,
        "exp": now + math.ceil(lifetime),
        "jti": secrets.token_hex(8),
        "iss": "symbl-sandbox",
    }
    return ".".join(
        (
            _b64(json.dumps(header, separators=(",", ":")).encode()),
            _b64(json.dumps(claims, separators=(",", ":")).encode()),
            _b64(secrets.token_bytes(32)),
        )
    )
