-- The call ledger. Times are epoch milliseconds. A room name is one call: names are never reused.
CREATE TABLE calls (
  room TEXT PRIMARY KEY,
  room_sid TEXT,
  agent_name TEXT NOT NULL,
  end_mode TEXT NOT NULL,
  max_duration_seconds INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  deadline_at INTEGER NOT NULL,
  started_at INTEGER,
  status TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'ended')),
  ended_at INTEGER,
  end_reason TEXT,
  ended_by TEXT,
  -- 'api' | 'cron' | 'agent' | 'webhook': who recorded the end.
  end_source TEXT,
  -- 0 = inferred (webhook, or an agent that only saw the room vanish), 1 = authoritative.
  -- A stronger end replaces a weaker one; otherwise the first end wins.
  end_strength INTEGER,
  end_note TEXT,
  agent_removed_at INTEGER,
  dispatch_id TEXT
);
CREATE INDEX calls_open_by_deadline ON calls (status, deadline_at);
CREATE INDEX calls_by_created ON calls (created_at, room);

CREATE TABLE call_participants (
  room TEXT NOT NULL REFERENCES calls (room),
  identity TEXT NOT NULL,
  kind TEXT NOT NULL DEFAULT 'STANDARD',
  -- Set when this edge issued the identity a token for the room: only they may end or read the call.
  issued_at INTEGER,
  joined_at INTEGER,
  left_at INTEGER,
  disconnect_reason TEXT,
  PRIMARY KEY (room, identity)
);

CREATE TABLE call_reports (
  call_id TEXT PRIMARY KEY,
  room TEXT NOT NULL,
  received_at INTEGER NOT NULL,
  body TEXT NOT NULL
);
CREATE INDEX call_reports_by_room ON call_reports (room);

-- LiveKit webhook ids already applied: LiveKit retries, so duplicates are expected.
CREATE TABLE webhook_events (
  id TEXT PRIMARY KEY,
  event TEXT NOT NULL,
  room TEXT,
  received_at INTEGER NOT NULL
);
