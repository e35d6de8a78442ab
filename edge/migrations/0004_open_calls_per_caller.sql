-- Who opened the call, for the cap on open calls per caller (MAX_OPEN_CALLS_PER_CALLER):
-- 'id:<identity>' for a signed-in end user, 'ip:<address>' for an anonymous one. NULL for calls a
-- backend opened (backends enforce their own limits) and for calls opened before this column.
ALTER TABLE calls ADD COLUMN caller_key TEXT;
-- The cap counts one caller's open calls on every token request: only open rows are indexed.
CREATE INDEX calls_open_by_caller_key ON calls (caller_key, join_by)
  WHERE status = 'open' AND caller_key IS NOT NULL;
