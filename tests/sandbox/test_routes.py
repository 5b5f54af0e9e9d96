"""Routing, 404/405, and HTTP/1.1 connection handling."""

from __future__ import annotations

import http.client
import json
import socket
import struct
import time
from urllib.parse import urlsplit

import httpx
import pytest

from tests.sandbox.conftest import wav

NO_CONVERSATION = {"message": "The conversationId is either invalid or does not exist."}


def test_unknown_route_is_404_json(api):
    """A path the API does not have answers 404 with a JSON body."""
    for path in ("/v1/nothing", "/v2/process/audio", "/", "/v1/conversations/1/nothing"):
        response = api.get(path)
        assert response.status_code == 404, path
        assert "message" in response.json()


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("GET", "/oauth2/token:generate", "POST"),
        ("GET", "/v1/process/audio", "POST"),
        ("DELETE", "/v1/process/video", "POST"),
        ("POST", "/v1/process/audio/123", "PUT"),
        ("PUT", "/v1/process/audio/url", "POST"),
        ("GET", "/v1/process/video/url/123", "PUT"),
        ("POST", "/v1/job/abc", "GET"),
        ("POST", "/v1/conversations", "GET"),
        ("PUT", "/v1/conversations/123", "DELETE, GET"),
        ("DELETE", "/v1/conversations/123/messages", "GET"),
        ("PATCH", "/v1/conversations/123/trackers-detected", "GET"),
    ],
)
def test_wrong_method_is_405_with_allow(api, method, path, allowed):
    """A known route with the wrong method answers 405, JSON, and an Allow header."""
    response = api.request(method, path)
    assert response.status_code == 405
    assert response.headers["Allow"] == allowed
    assert "message" in response.json()


def test_unknown_conversation_is_404_on_every_read(api):
    """GET, DELETE and PUT on a conversationId that does not exist answer the documented 404."""
    for what in ("", "/messages", "/topics", "/summary", "/trackers-detected", "/analytics"):
        response = api.get(f"/v1/conversations/1234567890123456{what}")
        assert response.status_code == 404
        assert response.json() == NO_CONVERSATION
    assert api.request("DELETE", "/v1/conversations/1234567890123456").json() == NO_CONVERSATION
    response = api.upload(wav(), conversation_id="1234567890123456")
    assert (response.status_code, response.json()) == (404, NO_CONVERSATION)
    response = api.submit_url("https://example.com/a.wav", conversation_id="nope")
    assert (response.status_code, response.json()) == (404, NO_CONVERSATION)
    assert api.sandbox.conversations() == {}


def test_unknown_job_is_404(api):
    """The Job API answers 404 for a jobId it never issued."""
    response = api.get("/v1/job/6f1c0d5e-0000-4000-8000-000000000000")
    assert response.status_code == 404
    assert "message" in response.json()


def test_every_response_has_content_length_and_json(api):
    """Success and error answers alike carry Content-Length and a JSON Content-Type."""
    for response in (
        api.get("/v1/conversations"),
        api.get("/nowhere"),
        api.request("POST", "/v1/job/x"),
        api.upload(wav(), content_type="text/plain"),
    ):
        assert int(response.headers["Content-Length"]) == len(response.content)
        assert response.headers["Content-Type"].startswith("application/json")
        json.loads(response.content)


def test_keep_alive_survives_early_errors(api):
    """One connection serves a 401-before-body upload, a 400, a 201 and a GET in a row."""
    host, port = api.sandbox.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=5)
    body = wav(300_000)
    auth = {**api.auth, "Content-Type": "audio/wav"}
    answers = []
    for headers in ({"Content-Type": "audio/wav"}, {**auth, "Content-Type": "text/x"}, auth):
        connection.request("POST", "/v1/process/audio", body=body, headers=headers)
        response = connection.getresponse()
        answers.append(response.status)
        response.read()
        assert response.getheader("Connection") != "close"
    connection.request("GET", "/v1/conversations", headers=api.auth)
    response = connection.getresponse()
    assert response.status == 200
    assert len(json.loads(response.read())["conversations"]) == 1
    assert answers == [401, 400, 201]
    sock = connection.sock
    connection.close()
    assert sock is None or sock.fileno() == -1


def test_malformed_request_line_gets_json_400(sandbox):
    """A request the HTTP parser rejects still gets a JSON error and a closed connection."""
    host, port = sandbox.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(b"GARBAGE\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400")
    assert b"Connection: close" in head
    assert "message" in json.loads(body)


def test_trailing_slash_is_tolerated(api):
    """`/v1/conversations/` routes like `/v1/conversations`."""
    assert api.get("/v1/conversations/").status_code == 200


def test_a_client_that_resets_its_connection_is_not_reported(sandbox, capsys):
    """A killed client (an RST mid-request) is routine for the emulator: no traceback."""
    parts = urlsplit(sandbox.url)
    host, port = parts.hostname, parts.port
    for _ in range(3):
        client = socket.create_connection((host, port))
        client.sendall(b"GET /v1/job/x HTTP/1.1\r\n")  # and never the rest
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()  # linger 0: the kernel answers with RST, as when a process is killed
    time.sleep(0.3)
    assert "Traceback" not in capsys.readouterr().err
    assert httpx.get(f"{sandbox.url}/v1/nothing").status_code == 404
