"""Token generation, caching and validation (symbl-api.md §2, §12.1)."""

from __future__ import annotations

import base64
import time

from tests.sandbox.conftest import wav

CREDS = {"type": "application", "appId": "sandbox", "appSecret": "sandbox"}
BAD_TOKEN = {"message": "Token validation failed for provided token."}


def _generate(http, sandbox, body=None, **kw):
    return http.post(f"{sandbox.url}/oauth2/token:generate", json=body or CREDS, **kw)


def test_token_is_jwt_shaped_with_full_lifetime(http, sandbox):
    """A first token:generate returns a three-part base64url token and the full lifetime."""
    response = _generate(http, sandbox)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"accessToken", "expiresIn"}
    assert body["expiresIn"] == 86400
    parts = body["accessToken"].split(".")
    assert len(parts) == 3
    for part in parts:
        base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def test_same_token_with_decreasing_lifetime_while_valid(http, make_sandbox):
    """Repeated generation returns the cached token with a decreasing expiresIn."""
    sandbox = make_sandbox(token_lifetime_seconds=5)
    first = _generate(http, sandbox).json()
    time.sleep(1.1)
    second = _generate(http, sandbox).json()
    assert second["accessToken"] == first["accessToken"]
    assert first["expiresIn"] == 5
    assert 3 <= second["expiresIn"] < first["expiresIn"]
    assert isinstance(second["expiresIn"], int)


def test_new_token_after_expiry_and_old_one_rejected(http, make_sandbox, make_api):
    """After the lifetime the old token gets 401 and generation issues a different token."""
    sandbox = make_sandbox(token_lifetime_seconds=1)
    api = make_api(sandbox)
    assert api.get("/v1/conversations").status_code == 200
    time.sleep(1.1)
    response = api.get("/v1/conversations")
    assert response.status_code == 401
    assert response.json() == BAD_TOKEN
    fresh = _generate(http, sandbox).json()
    assert fresh["accessToken"] != api.token
    auth = {"Authorization": f"Bearer {fresh['accessToken']}"}
    assert http.get(f"{sandbox.url}/v1/conversations", headers=auth).status_code == 200
    assert sandbox.stats()["tokens_issued"] == 2


def test_bad_credentials_are_401(http, sandbox):
    """A wrong appSecret or appId is rejected with 401."""
    assert _generate(http, sandbox, {**CREDS, "appSecret": "nope"}).status_code == 401
    assert _generate(http, sandbox, {**CREDS, "appId": "other"}).status_code == 401


def test_malformed_token_requests_are_400(http, sandbox):
    """Non-JSON bodies, a wrong grant type or missing fields are 400."""
    url = f"{sandbox.url}/oauth2/token:generate"
    assert http.post(url, content=b"{not json").status_code == 400
    assert http.post(url, json=["a"]).status_code == 400
    assert _generate(http, sandbox, {**CREDS, "type": "password"}).status_code == 400
    assert _generate(http, sandbox, {"type": "application", "appId": "sandbox"}).status_code == 400


def test_custom_credentials(http, make_sandbox):
    """The accepted appId/appSecret come from the options."""
    sandbox = make_sandbox(app_id="id-1", app_secret="s3cret")
    assert _generate(http, sandbox).status_code == 401
    body = {"type": "application", "appId": "id-1", "appSecret": "s3cret"}
    assert _generate(http, sandbox, body).status_code == 200


def test_missing_and_unknown_tokens_are_401(http, sandbox):
    """Every API route needs a valid token: none, an unknown one, or a non-Bearer scheme fail."""
    url = sandbox.url
    for headers in ({}, {"Authorization": "Bearer nope"}, {"x-api-key": "nope"}):
        assert http.get(f"{url}/v1/job/x", headers=headers).json() == BAD_TOKEN
        assert http.get(f"{url}/v1/conversations/1", headers=headers).status_code == 401
        response = http.post(f"{url}/v1/process/audio", content=wav(), headers=headers)
        assert response.status_code == 401
    token = _generate(http, sandbox).json()["accessToken"]
    basic = {"Authorization": f"Basic {token}"}
    assert http.get(f"{url}/v1/conversations", headers=basic).status_code == 401
    assert sandbox.conversations() == {}


def test_bearer_and_x_api_key_both_accepted(http, sandbox):
    """The token works as `Authorization: Bearer` and as the deprecated `x-api-key`."""
    token = _generate(http, sandbox).json()["accessToken"]
    for headers in ({"Authorization": f"Bearer {token}"}, {"x-api-key": token}):
        response = http.post(
            f"{sandbox.url}/v1/process/audio",
            content=wav(),
            headers={**headers, "Content-Type": "audio/wav"},
        )
        assert response.status_code == 201, response.text


def test_expire_tokens_fault_invalidates_current_token(http, sandbox, api):
    """The expire_tokens fault makes the current token fail and the next generation is new."""
    assert api.get("/v1/conversations").status_code == 200
    sandbox.faults.arm("expire_tokens")
    assert api.get("/v1/conversations").status_code == 401
    assert _generate(http, sandbox).json()["accessToken"] != api.token


def test_token_generations_are_counted(http, sandbox):
    """Stats count every token:generate call and every distinct token issued."""
    for _ in range(3):
        _generate(http, sandbox)
    stats = sandbox.stats()
    assert stats["token_generations"] == 3
    assert stats["tokens_issued"] == 1
