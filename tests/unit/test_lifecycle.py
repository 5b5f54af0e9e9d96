"""The state machine: one table, every state has a stage, terminals have no stage."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ingestd.configload import parse_config
from ingestd.lifecycle import PIPELINE, TRANSITIONS, State, TransitionError, check_transition
from ingestd.pipeline import Pipeline

README = Path(__file__).parents[2] / "README.md"


class TestTable:
    def test_every_state_is_in_the_table(self) -> None:
        """No state is missing from the transition table."""
        assert set(TRANSITIONS) == set(State)

    def test_every_pipeline_state_has_a_stage(self) -> None:
        """The pipeline maps each non-terminal state, and only those, to a stage."""
        config = parse_config("symbl: {base_url: sandbox}\nwatch: [{path: /tmp/x}]")
        pipeline = Pipeline(config, None, None, None, {})  # type: ignore[arg-type]
        assert set(pipeline._stages) == set(PIPELINE)

    def test_terminal_states_have_no_stage(self) -> None:
        """done, failed, rejected, duplicate, dismissed run nothing by themselves."""
        assert {s for s in State if s.is_terminal} == {
            State.DONE,
            State.FAILED,
            State.REJECTED,
            State.DUPLICATE,
            State.DISMISSED,
        }

    def test_duplicate_is_final(self) -> None:
        """A duplicate never moves again."""
        assert TRANSITIONS[State.DUPLICATE] == frozenset()

    def test_dismissed_is_final_and_never_after_an_upload_started(self) -> None:
        """A dismissed recording never moves again; only states whose content has not
        reached the API (and the failed or rejected ones) can be dismissed."""
        assert TRANSITIONS[State.DISMISSED] == frozenset()
        into = {s for s, targets in TRANSITIONS.items() if State.DISMISSED in targets}
        assert into == {
            State.DISCOVERED,
            State.PROBED,
            State.TRANSCODED,
            State.QUEUED,
            State.FAILED,
            State.REJECTED,
        }

    def test_nothing_returns_to_before_upload_after_submission(self) -> None:
        """Once its job completed, a recording is never uploaded again by the state machine
        alone; the one way back to the queue is a job the API failed (submitted -> queued)."""
        for state in (State.FETCHING, State.DELIVERING, State.DONE):
            assert State.QUEUED not in TRANSITIONS[state]
            assert State.SUBMITTING not in TRANSITIONS[state]
        assert State.SUBMITTING not in TRANSITIONS[State.SUBMITTED]
        assert TRANSITIONS[State.SUBMITTED] == {State.FETCHING, State.QUEUED, State.FAILED}

    def test_illegal_transition_raises(self) -> None:
        """The table is enforced."""
        with pytest.raises(TransitionError):
            check_transition(State.DISCOVERED, State.DONE)
        check_transition(State.DISCOVERED, State.PROBED)


def test_readme_lists_exactly_the_states() -> None:
    """The README's state list equals the enum."""
    text = README.read_text()
    section = text.split("## Recording states", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^- `([a-z_]+)`", section, re.MULTILINE))
    assert listed == {str(s) for s in State}
