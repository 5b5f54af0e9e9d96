-- ingestd state store, schema version 3 (see the end for what 2 and 3 added). One row per settled file version.
CREATE TABLE IF NOT EXISTS recordings (
    id                INTEGER PRIMARY KEY,
    watch             TEXT    NOT NULL,   -- watch name
    watch_root        TEXT    NOT NULL,   -- folder it was found under
    relpath           TEXT    NOT NULL,   -- path below the root, '/'-separated
    size_bytes        INTEGER NOT NULL,
    mtime             REAL    NOT NULL,
    sha256            TEXT    NOT NULL,   -- fingerprint = size_bytes + sha256
    state             TEXT    NOT NULL,   -- ingestd.lifecycle.State
    failed_from       TEXT,               -- state a failed recording resumes in
    error             TEXT,               -- last error, for status and the user
    attempts          INTEGER NOT NULL DEFAULT 0,
    next_attempt_at   REAL    NOT NULL DEFAULT 0,
    duplicate_of      INTEGER,
    conversation_key  TEXT,               -- NULL = a conversation of its own
    sort_key          TEXT    NOT NULL DEFAULT '',
    media             TEXT,               -- JSON: source Media
    upload_path       TEXT,               -- original or transcoded copy
    upload_media      TEXT,               -- JSON: Media of the upload
    upload_size_bytes INTEGER,
    endpoint          TEXT,               -- JSON: Endpoint
    params            TEXT,               -- JSON: Params
    name              TEXT,               -- conversation name sent to the API
    upload_started_at REAL,               -- set before bytes leave; reconcile if set
    conversation_id   TEXT,
    job_id            TEXT,               -- NULL after reconciliation adopted a conversation
    insights_path     TEXT,
    created_at        REAL    NOT NULL,
    updated_at        REAL    NOT NULL
);
CREATE INDEX IF NOT EXISTS recordings_state ON recordings (state, next_attempt_at);
CREATE INDEX IF NOT EXISTS recordings_fingerprint ON recordings (sha256, size_bytes);
CREATE INDEX IF NOT EXISTS recordings_path ON recordings (watch, relpath);
CREATE INDEX IF NOT EXISTS recordings_key ON recordings (conversation_key);
CREATE INDEX IF NOT EXISTS recordings_conversation ON recordings (conversation_id);

-- The persistent conversation mapping: key -> conversationId of the first POST.
CREATE TABLE IF NOT EXISTS conversations (
    key             TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL,
    name            TEXT,
    created_at      REAL NOT NULL
);

-- Every state change, for `ingestd status` and post-mortems.
CREATE TABLE IF NOT EXISTS events (
    id           INTEGER PRIMARY KEY,
    recording_id INTEGER NOT NULL,
    at           REAL    NOT NULL,
    old          TEXT,
    new          TEXT    NOT NULL,
    facts        TEXT
);
CREATE INDEX IF NOT EXISTS events_recording ON events (recording_id);

-- The per-sink outbox: each (recording, sink) delivery tracked on its own.
CREATE TABLE IF NOT EXISTS deliveries (
    recording_id    INTEGER NOT NULL,
    sink            TEXT    NOT NULL,
    state           TEXT    NOT NULL,    -- pending | done | failed
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL    NOT NULL DEFAULT 0,
    error           TEXT,
    detail          TEXT,
    updated_at      REAL    NOT NULL,
    PRIMARY KEY (recording_id, sink)
);

-- Schema version 2: what happens after a recording (ingestd.lifecycle.Disposal, Deletion).
-- What became of each finished recording's file: after_success / after_rejected.
CREATE TABLE IF NOT EXISTS dispositions (
    recording_id    INTEGER PRIMARY KEY,
    action          TEXT    NOT NULL,   -- move | delete
    state           TEXT    NOT NULL,   -- ingestd.lifecycle.Disposal
    target          TEXT,               -- move: where the file goes (chosen before any copy)
    detail          TEXT,               -- why it was held or failed
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL    NOT NULL DEFAULT 0,
    created_at      REAL    NOT NULL,
    updated_at      REAL    NOT NULL
);
CREATE INDEX IF NOT EXISTS dispositions_state ON dispositions (state, next_attempt_at);

-- Conversations to delete at the API (symbl.delete_after_delivery, ingestd forget, ...).
CREATE TABLE IF NOT EXISTS api_deletions (
    conversation_id TEXT    PRIMARY KEY,
    reason          TEXT    NOT NULL,   -- delivered | closed | abandoned | forget
    recording_id    INTEGER,            -- the recording it came from, when there is one
    state           TEXT    NOT NULL,   -- ingestd.lifecycle.Deletion
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL    NOT NULL DEFAULT 0,
    error           TEXT,
    created_at      REAL    NOT NULL,
    updated_at      REAL    NOT NULL
);
CREATE INDEX IF NOT EXISTS api_deletions_state ON api_deletions (state, next_attempt_at);

-- Schema version 3: the account's job limit as lowered after a 429 (ingestd.joblimit, AIMD).
CREATE TABLE IF NOT EXISTS job_limits (
    backend    TEXT    PRIMARY KEY,
    lowered_to INTEGER NOT NULL,
    lowered_at REAL    NOT NULL
);
