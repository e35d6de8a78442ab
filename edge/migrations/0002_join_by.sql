-- When the last token issued for a call expires (epoch ms): a call whose room never started by
-- then was never joined. NULL for calls the edge opened for an existing room (dispatch).
ALTER TABLE calls ADD COLUMN join_by INTEGER;
CREATE INDEX calls_unstarted_by_join_by ON calls (status, join_by) WHERE started_at IS NULL;
