"""``ingestd drain [NODE]`` and ``ingestd undrain [NODE]``: take a node of a shared
PostgreSQL state database out of the hand-out and back (issue 12).

A drained node finishes the recordings it holds and claims nothing new (its
`ingestd.nodes.Membership.draining`, read at every heartbeat); the other nodes take the new
work. The flag is the node name's, in the store: it stays set across that node's restarts
(an operator drained it on purpose, e.g. before maintenance of its host) until ``undrain``.

On SQLite there is one daemon and no other node to hand work to, so both commands refuse
with one line saying what to do instead: stopping that daemon is already graceful, and its
work resumes at its next start.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from ingestd.errors import IngestdError
from ingestd.nodes import HEARTBEAT_SECONDS, node_rows
from ingestd.wording import plural


def _target(args: argparse.Namespace) -> tuple[Any, str, dict[str, Any] | None]:
    """(store, node name, that node's status row or None) for a drain or undrain."""
    from ingestd.commands import _load, _open_store

    config = _load(args)
    name = args.node or config.node_name
    if config.state_path is not None:
        raise IngestdError(
            f"{args.command}: this config's state is SQLite ({config.state_path}), used by "
            f"one daemon alone, so there is no other node to take its work; draining is for "
            f"several nodes on one PostgreSQL database (state.url: postgresql://...). To take "
            f"this daemon out of service, stop it: a stop is graceful and its work resumes "
            f"at its next start"
        )
    store = _open_store(config)
    now = time.time()
    rows = node_rows(store.nodes(), store.claims(), now, config.node_lease_seconds)
    return store, name, next((r for r in rows if r["name"] == name), None)


def _unknown(store: Any, name: str) -> IngestdError:
    names = [n["name"] for n in store.nodes()]
    known = f"nodes: {', '.join(names)}" if names else "no node runs on it"
    return IngestdError(
        f"no node {name!r} on {store.where} ({known}); a node is listed from its daemon's "
        f"start on this database until it stops"
    )


def cmd_drain(args: argparse.Namespace) -> int:
    store, name, row = _target(args)
    if not store.set_draining(name, True):
        raise _unknown(store, name)
    assert row is not None  # set_draining found it, so the read just before did
    held = plural(row["claims"], "recording")
    if row["draining"]:
        print(f"node {name}: already draining; it holds {held}")
        return 0
    print(
        f"node {name}: draining: it finishes the {held} it holds and claims nothing new, "
        f"also after a restart, until `ingestd undrain {name}`"
    )
    if row["state"] == "live":
        print(
            f"  it notices within {HEARTBEAT_SECONDS:.0f} s (its next heartbeat); "
            f"`ingestd status` shows when it holds none"
        )
    elif row["state"] == "stale":
        print(
            f"  it has not been heard for {row['heartbeat_age_seconds']:.0f} s: its claims "
            f"expire and other nodes take them over; when it comes back it stays drained"
        )
    return 0


def cmd_undrain(args: argparse.Namespace) -> int:
    store, name, row = _target(args)
    if not store.set_draining(name, False):
        raise _unknown(store, name)
    assert row is not None
    if not row["draining"]:
        print(f"node {name}: was not draining; nothing changed")
    elif row["state"] == "stopped":
        print(
            f"node {name}: no longer drained; it was stopped, so it is no longer listed, "
            f"and takes new work when it starts"
        )
    else:
        print(
            f"node {name}: takes new work again (within {HEARTBEAT_SECONDS:.0f} s, at its "
            f"next heartbeat)"
        )
    return 0


def add_parsers(sub: Any, with_config: Callable[[argparse.ArgumentParser], None]) -> None:
    for command, func, summary, text in (
        (
            "drain",
            cmd_drain,
            "a node finishes what it holds and claims nothing new (PostgreSQL, several nodes)",
            "Drain a node of a shared PostgreSQL state database: it finishes the recordings "
            "it holds and claims nothing new; the other nodes take the new work. It stays "
            "drained across its restarts (it was drained on purpose) until `ingestd undrain`.",
        ),
        (
            "undrain",
            cmd_undrain,
            "a drained node claims new work again",
            "Let a drained node claim new work again (at its next heartbeat, within about "
            "5 s). A drained node that was stopped is forgotten, as any cleanly stopped node is.",
        ),
    ):
        p = sub.add_parser(command, help=summary, description=text)
        with_config(p)
        p.add_argument("node", nargs="?", help="the node's name (default: this config's node.name)")
        p.set_defaults(func=func)
