-- The agent job the edge admitted for a call (POST /calls/:room/admit), and when: one agent per
-- call, and the edge's agent-arrival watch knows an agent is on its way before it joins.
ALTER TABLE calls ADD COLUMN agent_job_id TEXT;
ALTER TABLE calls ADD COLUMN agent_admitted_at INTEGER;
