"""Who may press retry and redeliver: a token, a CSRF value and a same-origin check.

No token configured = read-only: every action answers 403. With one:

- a script sends it as ``Authorization: Bearer TOKEN`` (a browser never adds that header to
  a cross-site request, so no CSRF value is needed there);
- a person signs in once with the token (``/login``); the browser then holds a session
  cookie (HttpOnly, SameSite=Strict) derived from the token, never the token itself, and
  every form carries a CSRF value derived from it too.

Any POST whose ``Origin`` (or, failing that, ``Referer``) names another host than the one
asked for (or one of ``dashboard.allowed_hosts``, the names a reverse proxy serves it under)
is refused with 403: that also stops DNS-rebinding pages on the LAN.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from http.cookies import SimpleCookie
from urllib.parse import urlsplit

from ingestd.config import Secret

COOKIE = "ingestd_session"


class Denied(Exception):
    """An action refused: `status` is 401 (who are you?) or 403 (not like this)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Guard:
    def __init__(self, token: Secret | None, allowed_hosts: tuple[str, ...] = ()) -> None:
        self._token = token.reveal().encode() if token else None
        self.allowed_hosts = frozenset(h.lower() for h in allowed_hosts)

    @property
    def enabled(self) -> bool:
        return self._token is not None

    def _derive(self, purpose: str) -> str:
        assert self._token is not None
        return hmac.new(self._token, purpose.encode(), hashlib.sha256).hexdigest()

    def session_value(self) -> str:
        return self._derive("session")

    def csrf_value(self) -> str:
        return self._derive("csrf") if self._token else ""

    def token_matches(self, candidate: str) -> bool:
        return self._token is not None and hmac.compare_digest(
            candidate.strip().encode(), self._token
        )

    def signed_in(self, headers: Mapping[str, str]) -> bool:
        if self._token is None:
            return False
        cookie = SimpleCookie()
        try:
            cookie.load(headers.get("Cookie", ""))
        except Exception:
            return False
        morsel = cookie.get(COOKIE)
        return morsel is not None and hmac.compare_digest(morsel.value, self.session_value())

    def check_origin(self, headers: Mapping[str, str]) -> None:
        """403 unless the request's Origin (or Referer) is this very host, or absent (curl)."""
        source = headers.get("Origin") or headers.get("Referer")
        if not source:
            return
        host = headers.get("Host", "")
        origin = urlsplit(source)
        if source == "null" or (
            origin.netloc.lower() != host.lower()
            and (origin.hostname or "").lower() not in self.allowed_hosts
        ):
            raise Denied(403, "refused: the request came from another site (Origin check)")

    def check_action(self, headers: Mapping[str, str], form: Mapping[str, str]) -> None:
        """Raise `Denied` unless this POST may change something."""
        if self._token is None:
            raise Denied(
                403,
                "the dashboard is read-only: set dashboard.token_file in the config to allow "
                "retry and redeliver",
            )
        self.check_origin(headers)
        authorization = headers.get("Authorization", "")
        if authorization.startswith("Bearer "):
            if not self.token_matches(authorization.removeprefix("Bearer ")):
                raise Denied(401, "wrong token")
            return
        if not self.signed_in(headers):
            raise Denied(
                401, "the dashboard token is needed: sign in, or send Authorization: Bearer TOKEN"
            )
        if not hmac.compare_digest(form.get("csrf", ""), self.csrf_value()):
            raise Denied(403, "refused: the form's CSRF value is missing or stale; reload the page")
