-- The call store: every call, event, turn, intent decision and handoff.
--
-- Plain SQL on purpose, so that the same tables can move to PostgreSQL:
-- timestamps are ISO 8601 UTC text, JSON documents are text, ids are text
-- (the call id) or integer keys (in PostgreSQL: BIGINT GENERATED ALWAYS AS
-- IDENTITY instead of SQLite's INTEGER PRIMARY KEY rowid alias).
-- Personal data is redacted before it gets here where `store.redact_pii` is on.

CREATE TABLE IF NOT EXISTS calls (
    call_id      TEXT PRIMARY KEY,            -- unique for ever: an ended call's id is never reused
    protocol     TEXT NOT NULL,               -- voicebot.v1 | twilio | ...
    caller       TEXT NOT NULL DEFAULT '{}',  -- JSON: metadata the caller's side sent (redacted)
    started_at   TEXT NOT NULL,
    ended_at     TEXT,
    status       TEXT NOT NULL DEFAULT 'active', -- active | completed | interrupted | shutdown | error | ...
    handled_by   TEXT NOT NULL DEFAULT 'bot',    -- bot | human
    agent_id     TEXT,
    first_intent TEXT,
    last_intent  TEXT,
    route        TEXT,
    handoff      TEXT,                           -- handoff reason, if the call went to a human
    turns        INTEGER NOT NULL DEFAULT 0
);

CREATE INDEX IF NOT EXISTS calls_started_at ON calls (started_at);

CREATE TABLE IF NOT EXISTS events (
    id       INTEGER PRIMARY KEY,
    call_id  TEXT NOT NULL REFERENCES calls (call_id),
    seq      INTEGER NOT NULL,   -- order within the call, as sent to agents
    ts       TEXT NOT NULL,
    type     TEXT NOT NULL,
    payload  TEXT NOT NULL       -- the whole event as JSON
);

-- What was said, by whom: caller finals, bot utterances.
CREATE TABLE IF NOT EXISTS turns (
    id          INTEGER PRIMARY KEY,
    call_id     TEXT NOT NULL REFERENCES calls (call_id),
    idx         INTEGER NOT NULL,   -- 0, 1, 2 ... within the call
    speaker     TEXT NOT NULL,      -- caller | bot
    text        TEXT NOT NULL,
    confidence  REAL,
    start_s     REAL,               -- caller stream time, seconds
    end_s       REAL,
    ts          TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS intents (
    id            INTEGER PRIMARY KEY,
    call_id       TEXT NOT NULL REFERENCES calls (call_id),
    turn_idx      INTEGER,           -- the caller turn it was decided on
    label         TEXT NOT NULL,
    confidence    REAL NOT NULL,
    alternatives  TEXT NOT NULL DEFAULT '[]',  -- JSON [{label, confidence}]
    slots         TEXT NOT NULL DEFAULT '{}',  -- JSON (redacted)
    ts            TEXT NOT NULL
);

CREATE INDEX IF NOT EXISTS intents_call ON intents (call_id);

CREATE TABLE IF NOT EXISTS handoffs (
    id       INTEGER PRIMARY KEY,
    call_id  TEXT NOT NULL REFERENCES calls (call_id),
    reason   TEXT NOT NULL,
    context  TEXT NOT NULL DEFAULT '{}',  -- JSON: transcript, intent, slots, summary, next steps
    ts       TEXT NOT NULL
);

CREATE INDEX IF NOT EXISTS handoffs_call ON handoffs (call_id);

-- Uniqueness, last: a file from before these indexes may hold duplicates, and then only this
-- part fails (the store logs it and goes on without the guarantee for that file).
-- One seq per call: a second writer of a call cannot merge into its record.
CREATE UNIQUE INDEX IF NOT EXISTS events_call_seq ON events (call_id, seq);
DROP INDEX IF EXISTS events_call;
CREATE UNIQUE INDEX IF NOT EXISTS turns_call_idx ON turns (call_id, idx);
DROP INDEX IF EXISTS turns_call;
