-- health-data-service: blood tests. A panel is one lab report (a date and a lab); its markers are
-- the measured values. Every row carries tenant_id and user_id; docs/health.md lists each index
-- with the queries it serves.

CREATE TABLE health_blood_panels (
    id          uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL,
    user_id     uuid NOT NULL,
    taken_on    date NOT NULL,
    -- '' when the CSV names no lab, so the natural key below stays unique.
    lab         text NOT NULL DEFAULT '',
    name        text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    -- A re-import of the same report updates it instead of adding a second panel; also serves
    -- the date-range list of panels.
    CONSTRAINT health_blood_panels_natural_key UNIQUE (tenant_id, user_id, taken_on, lab)
);

CREATE TABLE health_blood_markers (
    id          uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL,
    user_id     uuid NOT NULL,
    panel_id    uuid NOT NULL REFERENCES health_blood_panels (id) ON DELETE CASCADE,
    -- The panel's date, repeated so marker filters and trends need no join.
    taken_on    date NOT NULL,
    name        text NOT NULL,
    category    text,
    value       double precision NOT NULL,
    unit        text NOT NULL,
    ref_low     double precision,
    ref_high    double precision,
    -- 'low' / 'high' outside the reference range, 'normal' inside, NULL without a range.
    flag        text GENERATED ALWAYS AS (
                    CASE
                        WHEN ref_low IS NULL AND ref_high IS NULL THEN NULL
                        WHEN ref_low IS NOT NULL AND value < ref_low THEN 'low'
                        WHEN ref_high IS NOT NULL AND value > ref_high THEN 'high'
                        ELSE 'normal'
                    END) STORED,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
-- One value per marker and report (marker names compare case-insensitively): the natural key of
-- the CSV import; also reads a panel's markers and serves the ON DELETE CASCADE from a panel.
CREATE UNIQUE INDEX health_blood_markers_natural_key ON health_blood_markers (panel_id, lower(name));
-- A marker over time (trend, ?marker= filter): names compared case-insensitively.
CREATE INDEX health_blood_markers_name_idx
    ON health_blood_markers (tenant_id, user_id, lower(name), taken_on);
-- Marker lists by date, keyset-paginated; the out-of-range filter and the summary's flagged markers.
CREATE INDEX health_blood_markers_date_idx
    ON health_blood_markers (tenant_id, user_id, taken_on, id);
