-- Indexes for the chat-history REST API (docs/database.md lists each with its queries).

-- A regular user lists their own sessions, newest first, keyset-paginated
-- (GET /api/v1/chat/sessions without ?all=true).
CREATE INDEX chat_sessions_tenant_user_updated_idx
    ON chat_sessions (tenant_id, user_id, updated_at DESC, id DESC);

-- Deleting a session deletes its messages through the foreign key (ON DELETE CASCADE); the
-- referential action looks messages up by session_id alone, which the (tenant_id, session_id, ...)
-- index cannot serve, so without this index every session delete would scan all messages.
CREATE INDEX chat_messages_session_fk_idx ON chat_messages (session_id);
