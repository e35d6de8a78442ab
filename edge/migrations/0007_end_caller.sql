-- Who asked for the end through POST /calls/:room/end (issue #25): the kind of credential
-- ('admin', 'app', 'user', 'participant') and, for an end user or a participant, its identity.
-- The end note of such an end is theirs: a caller's free text is never shown as an operator's.
-- NULL for ends the agent, the webhooks or the cron recorded, and for ends before this column.
ALTER TABLE calls ADD COLUMN end_caller_kind TEXT;
ALTER TABLE calls ADD COLUMN end_caller_identity TEXT;
