-- Full-text search indexes the first 100,000 characters of a message. A tsvector holds at most
-- 1 MB, and a long message of distinct words exceeded it: the whole turn then failed to store.
-- 100,000 characters stay well under that limit whatever the words (see docs/database.md).
ALTER TABLE chat_messages DROP COLUMN search;
ALTER TABLE chat_messages
    ADD COLUMN search tsvector GENERATED ALWAYS AS (to_tsvector('simple', left(content, 100000))) STORED;
CREATE INDEX chat_messages_search_idx ON chat_messages USING gin (search);
