"""The ``slack`` fixture: a fake Slack on loopback (`tests.slack.fake`), no proxy in the way."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.slack.fake import PROXY_VARIABLES, FakeSlack, serve_fake_slack


@pytest.fixture
def slack(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSlack]:
    """A running fake Slack on 127.0.0.1 (a free port), with no proxy in the way.

    The proxy variables are removed from this process's environment, so a daemon
    subprocess started by the test inherits their absence too.
    """
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    with serve_fake_slack() as slack:
        yield slack
