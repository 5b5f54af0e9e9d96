"""Every error ingestd raises on purpose, and who has to act on it.

::

    IngestdError                  base; never raised bare
    ├── ConfigError               the user: fix the YAML (file, key path, what was expected)
    ├── PluginError               a plugin author: a plugin failed to load or a hook raised
    ├── RecordingError            about one recording; decides its next state
    │   ├── Rejected              the user: bad input (not media, empty, unreadable) -> rejected
    │   ├── Retryable             nobody: transient (429, 5xx, network); retried with back-off
    │   │   ├── DiskFull          the operator: free space; waits (never fails the recording)
    │   │   └── RateLimited       nobody: the account is at its job limit (429 on a submission)
    │   └── Permanent             the operator: will not succeed by retrying -> failed
    │       └── UnknownJob        the operator: the backend forgot a job; `ingestd retry`
    ├── ApiError                  the Symbl API answered with an error status (carries status)
    ├── StoreError                the operator: the state database is unusable
    └── LeaseLost                 nobody: another node took this recording over; drop the work
"""

from __future__ import annotations


class IngestdError(Exception):
    """Base class of every error ingestd raises on purpose."""


class ConfigError(IngestdError):
    """The configuration is invalid. Carries every problem found, one per line."""

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class PluginError(IngestdError):
    """A plugin could not be loaded, or one of its hooks raised."""


class RecordingError(IngestdError):
    """Something went wrong for one recording; the subclass decides what happens next."""


class Rejected(RecordingError):
    """Bad input: the file itself is the problem. Replacing the file is the way to retry."""


class Retryable(RecordingError):
    """A transient failure: the same step is retried after a back-off.

    Args:
        retry_after: seconds the remote side asked us to wait, if it said so.
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RateLimited(Retryable):
    """The API refused a submission for the account's limit (HTTP 429): nothing arrived.

    Not a failure of the recording: it waits in the queue for a job slot without spending
    an attempt, and the core lowers the account's effective job limit for a while when
    slots looked free (another client uses the account): `ingestd.pipeline`."""


class DiskFull(Retryable):
    """No space left where ingestd writes a recording's files (the work directory).

    The file is not at fault: the step waits with back-off for as long as it takes and
    never uses up the recording's attempts. The message names the full directory.
    """


class Permanent(RecordingError):
    """Retrying the same step will not help; the recording is marked failed.

    Args:
        status: the HTTP status the API answered, when the error came from one.
    """

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class UnknownJob(Permanent):
    """The backend no longer knows a job it accepted (an emulator restarted, the service
    purged it): waiting cannot help, only a new upload, which is the operator's call
    (`ingestd retry`). Raised by `Backend.wait_for_job`."""


class ApiError(IngestdError):
    """The Symbl API (or the sandbox) answered with an error status."""

    def __init__(self, status: int, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message
        self.retry_after = retry_after


class StoreError(IngestdError):
    """The state store cannot be opened, read or written.

    Args:
        transient: the cause may pass (a full disk, another process's lock), so the same
            write may succeed later; False for corruption or a newer schema.
    """

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


class LeaseLost(IngestdError):
    """This node's claim on a recording is gone: its lease ran out (the node was paused or
    cut off from the database) and another node took the recording over. The write that
    found out changed nothing; the work in hand is dropped, never finished twice."""

    def __init__(self, recording_id: int, message: str) -> None:
        super().__init__(message)
        self.recording_id = recording_id
