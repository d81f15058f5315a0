-- health-data-service: a tenant's UFC catalogue (fighters, events, fights; imported from CSV by an
-- admin of the tenant) and per-user subscriptions (following a fighter). Catalogue rows carry
-- tenant_id and the user who imported them; subscriptions carry tenant_id and user_id.

CREATE TABLE health_ufc_fighters (
    id             uuid PRIMARY KEY,
    tenant_id      uuid NOT NULL,
    imported_by    uuid NOT NULL,
    name           text NOT NULL,
    nickname       text,
    division       text,
    wins           integer NOT NULL DEFAULT 0,
    losses         integer NOT NULL DEFAULT 0,
    draws          integer NOT NULL DEFAULT 0,
    no_contests    integer NOT NULL DEFAULT 0,
    height_cm      double precision,
    reach_cm       double precision,
    stance         text,
    country        text,
    date_of_birth  date,
    -- Career statistics: significant strikes landed per minute, striking accuracy (%),
    -- takedowns per 15 minutes, takedown accuracy (%), submission attempts per 15 minutes.
    sig_strikes_per_min  double precision,
    strike_accuracy_pct  double precision,
    takedown_avg         double precision,
    takedown_accuracy_pct double precision,
    submission_avg       double precision,
    updated_at     timestamptz NOT NULL DEFAULT now()
);
-- The natural key of the CSV import (one fighter per name in a tenant) and the name-ordered,
-- keyset-paginated list.
CREATE UNIQUE INDEX health_ufc_fighters_name_key ON health_ufc_fighters (tenant_id, lower(name));
-- The division filter of the list.
CREATE INDEX health_ufc_fighters_division_idx
    ON health_ufc_fighters (tenant_id, lower(division), lower(name));

CREATE TABLE health_ufc_events (
    id           uuid PRIMARY KEY,
    tenant_id    uuid NOT NULL,
    imported_by  uuid NOT NULL,
    name         text NOT NULL,
    event_date   date NOT NULL,
    location     text,
    updated_at   timestamptz NOT NULL DEFAULT now()
);
-- One event per name in a tenant (the fights CSV names its event on every row).
CREATE UNIQUE INDEX health_ufc_events_name_key ON health_ufc_events (tenant_id, lower(name));
-- Events by date, newest first, keyset-paginated.
CREATE INDEX health_ufc_events_date_idx ON health_ufc_events (tenant_id, event_date, id);

CREATE TABLE health_ufc_fights (
    id            uuid PRIMARY KEY,
    tenant_id     uuid NOT NULL,
    event_id      uuid NOT NULL REFERENCES health_ufc_events (id) ON DELETE CASCADE,
    fighter_a_id  uuid NOT NULL REFERENCES health_ufc_fighters (id) ON DELETE CASCADE,
    fighter_b_id  uuid NOT NULL REFERENCES health_ufc_fighters (id) ON DELETE CASCADE,
    -- 'win' (winner_id names the winner), 'draw', 'no_contest'; NULL before the fight.
    outcome       text CHECK (outcome IN ('win', 'draw', 'no_contest')),
    winner_id     uuid REFERENCES health_ufc_fighters (id) ON DELETE SET NULL,
    weight_class  text,
    method        text,
    round         integer,
    time          text,
    title_fight   boolean NOT NULL DEFAULT false,
    bout_order    integer,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    -- A bout happens once per event: the natural key of the CSV import.
    CONSTRAINT health_ufc_fights_natural_key UNIQUE (tenant_id, event_id, fighter_a_id, fighter_b_id)
);
-- An event's card in bout order (event detail); also the cascade from an event.
CREATE INDEX health_ufc_fights_event_idx ON health_ufc_fights (event_id, bout_order);
-- A fighter's fights (fighter detail), in either corner; also the cascades from a fighter.
CREATE INDEX health_ufc_fights_fighter_a_idx ON health_ufc_fights (fighter_a_id);
CREATE INDEX health_ufc_fights_fighter_b_idx ON health_ufc_fights (fighter_b_id);
CREATE INDEX health_ufc_fights_winner_idx ON health_ufc_fights (winner_id);

CREATE TABLE health_ufc_subscriptions (
    tenant_id    uuid NOT NULL,
    user_id      uuid NOT NULL,
    fighter_id   uuid NOT NULL REFERENCES health_ufc_fighters (id) ON DELETE CASCADE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    -- Following is idempotent; also serves "what does this user follow".
    PRIMARY KEY (tenant_id, user_id, fighter_id)
);
-- The ON DELETE CASCADE from a fighter.
CREATE INDEX health_ufc_subscriptions_fighter_idx ON health_ufc_subscriptions (fighter_id);
