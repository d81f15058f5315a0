-- Batch jobs (docs/batch.md). Files and results live in storage; these tables hold what a job is,
-- where its files are, who may see them, and how far a run has come, so a replacement worker
-- resumes a job where a crashed one left it.

-- Files of the batch API: uploaded inputs (`batch`) and the outputs a job writes (`batch_output`),
-- one row per object in storage, scoped by tenant and user.
CREATE TABLE batch_files (
    id          TEXT PRIMARY KEY,
    tenant_id   UUID NOT NULL,
    user_id     UUID,
    purpose     TEXT NOT NULL CHECK (purpose IN ('batch', 'batch_output')),
    filename    TEXT NOT NULL,
    bytes       BIGINT NOT NULL,
    storage_key TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- When the sweeper removes the row and its object.
    expires_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX batch_files_owner_idx ON batch_files (tenant_id, user_id, created_at DESC, id DESC);
CREATE INDEX batch_files_expiry_idx ON batch_files (expires_at);

CREATE TABLE batch_jobs (
    id                TEXT PRIMARY KEY,
    tenant_id         UUID NOT NULL,
    user_id           UUID,
    -- Where the job's `progress` events go, and the task they belong to.
    session_id        UUID NOT NULL,
    task_id           UUID NOT NULL,
    endpoint          TEXT NOT NULL,
    input_file_id     TEXT NOT NULL,
    completion_window TEXT NOT NULL,
    status            TEXT NOT NULL CHECK (status IN ('validating', 'failed', 'in_progress',
                          'finalizing', 'completed', 'expired', 'cancelling', 'cancelled')),
    -- Known once the input is validated.
    model             TEXT,
    provider          TEXT,
    -- `provider`: the provider's batch API runs it; `sequential`: this service runs each line.
    mode              TEXT CHECK (mode IN ('provider', 'sequential')),
    -- The provider's ids, written before anything is polled, so a resumed run finds its batch.
    provider_batch_id TEXT,
    provider_file_id  TEXT,
    output_file_id    TEXT,
    error_file_id     TEXT,
    total             INTEGER NOT NULL DEFAULT 0,
    completed         INTEGER NOT NULL DEFAULT 0,
    failed            INTEGER NOT NULL DEFAULT 0,
    -- Validation errors of a `failed` job: [{code, line, message, param}].
    errors            JSONB,
    metadata          JSONB,
    usage             JSONB,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    in_progress_at    TIMESTAMPTZ,
    finalizing_at     TIMESTAMPTZ,
    completed_at      TIMESTAMPTZ,
    failed_at         TIMESTAMPTZ,
    expired_at        TIMESTAMPTZ,
    cancelling_at     TIMESTAMPTZ,
    cancelled_at      TIMESTAMPTZ,
    -- End of the completion window: an unfinished job then ends `expired`.
    expires_at        TIMESTAMPTZ NOT NULL,
    -- When the sweeper removes the job and its files (29 days by default).
    delete_at         TIMESTAMPTZ NOT NULL,
    -- The worker running the job, until when; a lease that lapses frees the job for another.
    lease_owner       TEXT,
    lease_until       TIMESTAMPTZ
);
CREATE INDEX batch_jobs_owner_idx ON batch_jobs (tenant_id, user_id, created_at DESC, id DESC);
CREATE INDEX batch_jobs_delete_idx ON batch_jobs (delete_at);
CREATE INDEX batch_jobs_open_idx ON batch_jobs (expires_at)
    WHERE status IN ('validating', 'in_progress', 'finalizing', 'cancelling');

-- The sequential run's journal: one row per finished line, written before the line counts as
-- done, so a resumed run skips it. Emptied into the output files when the job ends.
CREATE TABLE batch_lines (
    batch_id TEXT NOT NULL REFERENCES batch_jobs (id) ON DELETE CASCADE,
    line     INTEGER NOT NULL,
    ok       BOOLEAN NOT NULL,
    -- The output (or error) file's line for it.
    result   TEXT NOT NULL,
    PRIMARY KEY (batch_id, line)
);
