-- Tenants, users, chat sessions and messages. Every row carries tenant_id and every query of the
-- services filters by it; the indexes below are listed with the queries they serve in
-- docs/database.md.

CREATE TABLE tenants (
    id          uuid PRIMARY KEY,
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
    id             uuid PRIMARY KEY,
    tenant_id      uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    email          text NOT NULL,
    password_hash  text NOT NULL,
    role           text NOT NULL CHECK (role IN ('user', 'admin')),
    display_name   text,
    created_at     timestamptz NOT NULL DEFAULT now()
);
-- Login by email: emails are unique across tenants (case-insensitive).
CREATE UNIQUE INDEX users_email_key ON users (lower(email));
CREATE INDEX users_tenant_idx ON users (tenant_id, created_at);

-- Sessions may belong to tenants known only from their tokens (no foreign key to tenants).
CREATE TABLE chat_sessions (
    id          uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL,
    user_id     uuid,
    title       text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    metadata    jsonb NOT NULL DEFAULT '{}'::jsonb
);
-- List a tenant's sessions, newest first, keyset-paginated.
CREATE INDEX chat_sessions_tenant_updated_idx ON chat_sessions (tenant_id, updated_at DESC, id DESC);

CREATE TABLE chat_messages (
    id          uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL,
    session_id  uuid NOT NULL REFERENCES chat_sessions (id) ON DELETE CASCADE,
    task_id     uuid NOT NULL,
    role        text NOT NULL CHECK (role IN ('system', 'user', 'assistant', 'tool')),
    content     text NOT NULL,
    parts       jsonb,
    model       text,
    provider    text,
    usage       jsonb,
    latency_ms  integer,
    status      text NOT NULL CHECK (status IN ('complete', 'cancelled', 'error')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    metadata    jsonb NOT NULL DEFAULT '{}'::jsonb,
    search      tsvector GENERATED ALWAYS AS (to_tsvector('simple', content)) STORED,
    -- A redelivered action writes the same turn again: one user and one assistant row per task.
    CONSTRAINT chat_messages_task_role_key UNIQUE (task_id, role)
);
-- Read a session's messages in order; load recent history for the prompt.
CREATE INDEX chat_messages_session_idx ON chat_messages (tenant_id, session_id, created_at, id);
-- Full-text search within a tenant.
CREATE INDEX chat_messages_search_idx ON chat_messages USING gin (search);
