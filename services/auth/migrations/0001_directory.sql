-- Users, clients and resources (DESIGN §10.2). Case-insensitive uniqueness is on keys the service
-- computes (canonicalUsername / canonicalEmail, Unicode lower case), not on SQL lower(), whose
-- result depends on the database's collation.

-- Up Migration
CREATE TABLE users (
  id            text PRIMARY KEY,
  username      text NOT NULL CHECK (length(username) BETWEEN 1 AND 256),
  username_key  text NOT NULL UNIQUE,
  email         text CHECK (email IS NULL OR length(email) BETWEEN 3 AND 254),
  email_key     text UNIQUE,
  password_hash text NOT NULL,
  roles         text[] NOT NULL DEFAULT '{}',
  claims        jsonb NOT NULL DEFAULT '{}',
  disabled      boolean NOT NULL DEFAULT false,
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now(),
  CHECK ((email IS NULL) = (email_key IS NULL))
);

CREATE TABLE clients (
  client_id   text PRIMARY KEY,
  -- The config-file form of the client (DESIGN §3), without any secret.
  config      jsonb NOT NULL,
  -- `sha256:<base64url>` of the secret; null for public and private_key_jwt clients.
  secret_hash text,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE resources (
  audience   text PRIMARY KEY,
  scopes     text[] NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- Config-file entries already seeded ('user:<username_key>', 'client:<id>', 'resource:<audience>'):
-- each is seeded once, so a user deleted or changed with the CLI is not brought back by a restart.
CREATE TABLE directory_seeded (
  entry     text PRIMARY KEY,
  seeded_at timestamptz NOT NULL DEFAULT now()
);

-- Down Migration
DROP TABLE directory_seeded;
DROP TABLE resources;
DROP TABLE clients;
DROP TABLE users;
