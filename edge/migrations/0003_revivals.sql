-- A LiveKit token stays valid for its TTL, and LiveKit recreates a deleted room (re-running the
-- token's agent dispatch) for anyone who joins with one. Such a room, for a call the ledger has
-- ended, is a revival: closed at once and counted here so an operator sees who keeps trying.
ALTER TABLE calls ADD COLUMN revival_attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE calls ADD COLUMN last_revival_at INTEGER;
-- The sid of the last revived room counted: one revived room is one attempt, whichever of its
-- webhooks or its agent's admission request reports it first.
ALTER TABLE calls ADD COLUMN last_revival_sid TEXT;
