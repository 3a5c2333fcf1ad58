-- Second factors (DESIGN §10.5; src/mfa/pg-factors.ts): TOTP authenticators, passkeys and
-- recovery code sets, each a row of its user, gone with the user (ON DELETE CASCADE).
--
-- `data` holds what is kind-specific (mfa/factors.ts): TOTP {label, sealedSecret, lastStep},
-- passkey {label, publicKey, counter, transports}, recovery {label, codeHashes, total}; never a
-- secret in the clear (the TOTP secret is sealed, recovery codes are SHA-256 digests). Every use
-- is one UPDATE whose WHERE holds the rule (a later step, a greater counter, a digest still in
-- the set), so two replicas can never both accept the same one.
--
-- Uniqueness is the database's: a credential id across all users (UNIQUE), and at most one TOTP
-- and one recovery set per user (a partial unique index). `seq` orders factors of the same
-- created_at in the order they were added.

-- Up Migration
CREATE TABLE second_factors (
  id            text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9_-]{1,64}$'),
  user_id       text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  kind          text NOT NULL CHECK (kind IN ('totp', 'passkey', 'recovery')),
  -- base64url; a WebAuthn credential id has at most 1023 bytes (1364 characters).
  credential_id text UNIQUE CHECK (length(credential_id) BETWEEN 1 AND 2048),
  data          jsonb NOT NULL,
  created_at    timestamptz NOT NULL,
  last_used_at  timestamptz,
  seq           bigint GENERATED ALWAYS AS IDENTITY,
  CHECK ((kind = 'passkey') = (credential_id IS NOT NULL))
);

CREATE UNIQUE INDEX second_factors_one_per_user ON second_factors (user_id, kind) WHERE kind IN ('totp', 'recovery');
CREATE INDEX second_factors_user ON second_factors (user_id, created_at, seq);

-- Down Migration
DROP TABLE second_factors;
