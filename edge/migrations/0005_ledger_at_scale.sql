-- The ledger at scale (issue #15): every sweep, list and retention query reads through an index
-- that holds only the rows it wants, and cron runs claim the calls they work on.

-- A cron run's claim on a call it is closing (epoch ms until which the claim holds): a run that
-- overlaps it (a slow LiveKit) skips the call instead of processing it twice.
ALTER TABLE calls ADD COLUMN sweep_until INTEGER;

-- Calls that were live (started, or opened by a dispatch into an existing room) by deadline: the
-- max-duration backstop. Tokens never used are not in it: they close as not_joined
-- (calls_unstarted_by_join_by), never as max_duration.
CREATE INDEX calls_live_by_deadline ON calls (deadline_at)
  WHERE status = 'open' AND (started_at IS NOT NULL OR join_by IS NULL);
-- Replaced by calls_live_by_deadline; one index fewer to write on every call.
DROP INDEX calls_open_by_deadline;

-- GET /calls?status=…, newest first: one index per filter, so a page reads about a page of rows.
CREATE INDEX calls_open_by_created ON calls (created_at, room) WHERE status = 'open';
CREATE INDEX calls_ended_by_created ON calls (created_at, room)
  WHERE status = 'ended' AND end_reason IS NOT 'not_joined';
CREATE INDEX calls_not_joined_by_created ON calls (created_at, room)
  WHERE status = 'ended' AND end_reason = 'not_joined';

-- Retention (RETENTION_*_DAYS), oldest first.
CREATE INDEX calls_ended_by_ended_at ON calls (ended_at) WHERE status = 'ended';
CREATE INDEX call_reports_by_received ON call_reports (received_at);
CREATE INDEX webhook_events_by_received ON webhook_events (received_at);
