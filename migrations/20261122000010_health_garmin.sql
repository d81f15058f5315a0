-- health-data-service: Garmin data (daily summaries, sleep, activities, HRV, body composition) and
-- import jobs. Every row carries tenant_id and user_id, and every query of the service filters by
-- both; docs/health.md lists each index with the queries it serves.

-- One row per user and calendar day (UDSFile_*.json of a Garmin Connect export).
CREATE TABLE health_garmin_daily_summaries (
    tenant_id               uuid NOT NULL,
    user_id                 uuid NOT NULL,
    calendar_date           date NOT NULL,
    steps                   integer,
    distance_m              double precision,
    total_kcal              integer,
    active_kcal             integer,
    resting_hr              integer,
    min_hr                  integer,
    max_hr                  integer,
    avg_stress              integer,
    max_stress              integer,
    body_battery_high       integer,
    body_battery_low        integer,
    body_battery_charged    integer,
    body_battery_drained    integer,
    moderate_intensity_min  integer,
    vigorous_intensity_min  integer,
    source                  text NOT NULL,
    updated_at              timestamptz NOT NULL DEFAULT now(),
    -- The natural key of an idempotent import; also serves date-range reads, keyset-paginated.
    PRIMARY KEY (tenant_id, user_id, calendar_date)
);

-- One night per user, keyed by the calendar date Garmin gives it (the day of waking up).
CREATE TABLE health_garmin_sleep (
    tenant_id         uuid NOT NULL,
    user_id           uuid NOT NULL,
    calendar_date     date NOT NULL,
    sleep_start       timestamptz,
    sleep_end         timestamptz,
    deep_s            integer,
    light_s           integer,
    rem_s             integer,
    awake_s           integer,
    unmeasurable_s    integer,
    -- deep + light + rem: time asleep.
    asleep_s          integer GENERATED ALWAYS AS
                          (COALESCE(deep_s, 0) + COALESCE(light_s, 0) + COALESCE(rem_s, 0)) STORED,
    score             integer,
    quality_score     integer,
    avg_respiration   double precision,
    avg_sleep_stress  double precision,
    awake_count       integer,
    source            text NOT NULL,
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, user_id, calendar_date)
);

-- Workouts, from summarizedActivities.json (source 'garmin_connect', external_id = activityId) or
-- from FIT files (source 'fit', external_id = the file id: serial number and creation time).
CREATE TABLE health_garmin_activities (
    id             uuid PRIMARY KEY,
    tenant_id      uuid NOT NULL,
    user_id        uuid NOT NULL,
    source         text NOT NULL,
    external_id    text NOT NULL,
    name           text,
    activity_type  text NOT NULL,
    started_at     timestamptz NOT NULL,
    -- The local calendar day the activity started on (what "per day" analysis groups by).
    activity_date  date NOT NULL,
    duration_s     double precision NOT NULL,
    distance_m     double precision,
    calories       integer,
    avg_hr         integer,
    max_hr         integer,
    -- Seconds in heart-rate zones 1..5 (index 1 = zone 1); NULL when the source has none.
    hr_zones_s     double precision[],
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT health_garmin_activities_natural_key UNIQUE (tenant_id, user_id, source, external_id)
);
-- Per-day load in the analysis endpoints and date-range filters (activity_date).
CREATE INDEX health_garmin_activities_date_idx
    ON health_garmin_activities (tenant_id, user_id, activity_date);
-- Lists newest first, keyset-paginated on (started_at, id); the same workout from another source
-- (a FIT file vs. summarizedActivities.json) is found by its start.
CREATE INDEX health_garmin_activities_start_idx
    ON health_garmin_activities (tenant_id, user_id, started_at, id);

-- The training load of one activity (docs/health.md): Edwards' TRIMP, the sum over heart-rate
-- zones 1..5 of zone number x minutes in the zone; without zone times, 2 x minutes (as if the
-- whole activity were spent in zone 2).
CREATE FUNCTION health_training_load(duration_s double precision, hr_zones_s double precision[])
RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE
        WHEN hr_zones_s IS NULL OR cardinality(hr_zones_s) = 0 THEN duration_s / 60.0 * 2
        ELSE (SELECT COALESCE(sum(z * i), 0)
              FROM unnest(hr_zones_s) WITH ORDINALITY AS u (z, i)) / 60.0
    END
$$;

-- Overnight heart-rate variability (healthStatusData.json metric HRV, or an hrvSummary).
CREATE TABLE health_garmin_hrv (
    tenant_id       uuid NOT NULL,
    user_id         uuid NOT NULL,
    calendar_date   date NOT NULL,
    last_night_avg  double precision,
    weekly_avg      double precision,
    baseline_low    double precision,
    baseline_high   double precision,
    status          text,
    source          text NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, user_id, calendar_date)
);

-- Weight and body composition (userBioMetrics.json; the Withings side of the original system).
CREATE TABLE health_garmin_body_composition (
    tenant_id       uuid NOT NULL,
    user_id         uuid NOT NULL,
    measured_at     timestamptz NOT NULL,
    weight_kg       double precision NOT NULL,
    bmi             double precision,
    body_fat_pct    double precision,
    body_water_pct  double precision,
    muscle_mass_kg  double precision,
    bone_mass_kg    double precision,
    source          text NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, user_id, measured_at)
);

-- Garmin export imports: one row per upload, updated after each file (progress).
CREATE TABLE health_import_jobs (
    id            uuid PRIMARY KEY,
    tenant_id     uuid NOT NULL,
    user_id       uuid NOT NULL,
    kind          text NOT NULL,
    status        text NOT NULL CHECK (status IN ('queued', 'running', 'completed', 'failed')),
    files_total   integer NOT NULL,
    files_done    integer NOT NULL DEFAULT 0,
    files_skipped integer NOT NULL DEFAULT 0,
    -- Per dataset: {"inserted", "updated", "unchanged"}.
    records       jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- [{"file", "message"}] of the files that could not be imported.
    errors        jsonb NOT NULL DEFAULT '[]'::jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz
);
-- A user's jobs, newest first.
CREATE INDEX health_import_jobs_owner_idx ON health_import_jobs (tenant_id, user_id, created_at DESC);
