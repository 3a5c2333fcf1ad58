-- The audit trail (issue 13, DESIGN §9, §10.2): sign-ins, failures, lockouts, reuse detections,
-- revocations and admin actions, written in batches by the service and the CLI
-- (src/audit/postgres-trail.ts), searched by `gatehouse audit search`, kept AUDIT_RETENTION_DAYS.
--
-- Append-only: rows are inserted and, past the retention, deleted; a trigger refuses UPDATE, so
-- a record says what happened then. `time` is when the event happened (the service's clock), not
-- when its batch was written.
--
-- Indexes: searches are "newest first" pages, keyset on (time, id), optionally for one user,
-- client, event or address. A BRIN index on time would be small (rows arrive in time order) but
-- gives no order, so every page would sort its whole range; B-trees on (time, id) and on
-- (<filter>, time) answer each page by reading only its rows, and the retention's DELETE finds the
-- oldest rows on the first one.

-- Up Migration
CREATE TABLE audit_events (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  time        timestamptz NOT NULL,
  event       text NOT NULL CHECK (length(event) BETWEEN 1 AND 128),
  outcome     text NOT NULL CHECK (outcome IN ('success', 'failure')),
  actor_type  text CHECK (actor_type IN ('user', 'client', 'operator')),
  actor_id    text CHECK (length(actor_id) <= 256),
  user_id     text CHECK (length(user_id) <= 256),
  client_id   text CHECK (length(client_id) <= 256),
  address     text CHECK (length(address) <= 256),
  session_id  text CHECK (length(session_id) <= 256),
  family_id   text CHECK (length(family_id) <= 256),
  -- Every other field of the audit line, secrets censored before they get here.
  details     jsonb NOT NULL DEFAULT '{}',
  CHECK ((actor_type IS NULL) = (actor_id IS NULL))
);

CREATE INDEX audit_events_time ON audit_events (time, id);
CREATE INDEX audit_events_user ON audit_events (user_id, time) WHERE user_id IS NOT NULL;
CREATE INDEX audit_events_client ON audit_events (client_id, time) WHERE client_id IS NOT NULL;
CREATE INDEX audit_events_event ON audit_events (event, time);
CREATE INDEX audit_events_address ON audit_events (address, time) WHERE address IS NOT NULL;

CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit_events is append-only: rows are inserted and deleted past the retention, never updated';
END
$$;

CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
  FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();

-- Down Migration
DROP TABLE audit_events;
DROP FUNCTION audit_events_append_only();
