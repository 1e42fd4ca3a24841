-- The marketplace's system of record. Changes to these tables stream to search through CDC.

CREATE OR REPLACE FUNCTION vin_is_valid(vin text) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE STRICT AS $$
DECLARE
    weights constant int[] := ARRAY[8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2];
    letters constant text := 'ABCDEFGHJKLMNPRSTUVWXYZ';
    letter_values constant int[] := ARRAY[1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 7, 9, 2, 3, 4, 5, 6, 7, 8, 9];
    total int := 0;
    ch char;
    val int;
    check_char char;
BEGIN
    -- 17 characters, no I, O or Q; position 9 is the check digit (0-9 or X), ISO 3779 / 49 CFR 565.
    IF vin !~ '^[A-HJ-NPR-Z0-9]{17}$' THEN
        RETURN false;
    END IF;
    FOR i IN 1..17 LOOP
        ch := substr(vin, i, 1);
        IF ch ~ '[0-9]' THEN
            val := ch::int;
        ELSE
            val := letter_values[strpos(letters, ch)];
        END IF;
        total := total + val * weights[i];
    END LOOP;
    check_char := CASE WHEN total % 11 = 10 THEN 'X' ELSE (total % 11)::text END;
    RETURN substr(vin, 9, 1) = check_char;
END;
$$;

CREATE TABLE users (
    id            bigserial PRIMARY KEY,
    email         text NOT NULL UNIQUE CHECK (email ~ '^[^@\s]+@[^@\s]+\.[^@\s]+$'),
    password_hash text NOT NULL,
    full_name     text NOT NULL CHECK (length(full_name) BETWEEN 1 AND 200),
    role          text NOT NULL DEFAULT 'buyer' CHECK (role IN ('buyer', 'dealer', 'moderator', 'admin')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE dealers (
    id         bigserial PRIMARY KEY,
    owner_id   bigint REFERENCES users (id),
    name       text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    rating     numeric(2, 1) CHECK (rating BETWEEN 0 AND 5),
    phone      text,
    city       text NOT NULL,
    state      char(2) NOT NULL CHECK (state ~ '^[A-Z]{2}$'),
    zip        text NOT NULL CHECK (zip ~ '^[0-9]{5}$'),
    lat        double precision NOT NULL CHECK (lat BETWEEN -90 AND 90),
    lon        double precision NOT NULL CHECK (lon BETWEEN -180 AND 180),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE vehicles (
    id              bigserial PRIMARY KEY,
    dealer_id       bigint NOT NULL REFERENCES dealers (id),
    vin             char(17) NOT NULL UNIQUE CHECK (vin_is_valid(vin)),
    make            text NOT NULL,
    model           text NOT NULL,
    trim            text,
    year            smallint NOT NULL CHECK (year BETWEEN 1981 AND 2030),
    mileage         integer NOT NULL CHECK (mileage >= 0),
    condition_grade numeric(2, 1) NOT NULL CHECK (condition_grade BETWEEN 0 AND 5),
    body_type       text NOT NULL CHECK (body_type IN ('sedan', 'suv', 'truck', 'coupe', 'hatchback', 'convertible', 'wagon', 'van', 'minivan')),
    fuel            text NOT NULL CHECK (fuel IN ('gasoline', 'diesel', 'hybrid', 'plug_in_hybrid', 'electric')),
    transmission    text NOT NULL CHECK (transmission IN ('automatic', 'manual', 'cvt', 'dct')),
    drivetrain      text NOT NULL CHECK (drivetrain IN ('fwd', 'rwd', 'awd', '4wd')),
    exterior_color  text NOT NULL,
    city            text NOT NULL,
    state           char(2) NOT NULL CHECK (state ~ '^[A-Z]{2}$'),
    zip             text NOT NULL CHECK (zip ~ '^[0-9]{5}$'),
    lat             double precision NOT NULL CHECK (lat BETWEEN -90 AND 90),
    lon             double precision NOT NULL CHECK (lon BETWEEN -180 AND 180),
    images          text[] NOT NULL DEFAULT '{}',
    description     text,
    asking_price    numeric(12, 2) NOT NULL CHECK (asking_price >= 0),
    status          text NOT NULL DEFAULT 'active' CHECK (status IN ('draft', 'active', 'in_auction', 'sold', 'withdrawn')),
    deleted_at      timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX vehicles_dealer_id_idx ON vehicles (dealer_id);

CREATE TABLE auctions (
    id          bigserial PRIMARY KEY,
    dealer_id   bigint NOT NULL REFERENCES dealers (id),
    title       text NOT NULL,
    starts_at   timestamptz NOT NULL,
    ends_at     timestamptz NOT NULL,
    status      text NOT NULL DEFAULT 'upcoming' CHECK (status IN ('upcoming', 'live', 'closed', 'cancelled')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (ends_at > starts_at)
);

CREATE TABLE auction_lots (
    id             bigserial PRIMARY KEY,
    auction_id     bigint NOT NULL REFERENCES auctions (id),
    vehicle_id     bigint NOT NULL REFERENCES vehicles (id),
    lot_number     integer NOT NULL CHECK (lot_number > 0),
    starting_price numeric(12, 2) NOT NULL CHECK (starting_price >= 0),
    reserve_price  numeric(12, 2) CHECK (reserve_price >= 0),
    min_increment  numeric(12, 2) NOT NULL DEFAULT 100 CHECK (min_increment > 0),
    current_bid    numeric(12, 2) CHECK (current_bid >= 0),
    status         text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'sold', 'unsold', 'withdrawn')),
    UNIQUE (auction_id, lot_number),
    UNIQUE (auction_id, vehicle_id)
);

CREATE TABLE bids (
    id         bigserial PRIMARY KEY,
    lot_id     bigint NOT NULL REFERENCES auction_lots (id),
    user_id    bigint NOT NULL REFERENCES users (id),
    amount     numeric(12, 2) NOT NULL CHECK (amount > 0),
    currency   char(3) NOT NULL DEFAULT 'USD',
    placed_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX bids_lot_id_idx ON bids (lot_id, amount DESC);

CREATE TABLE questions (
    id          bigserial PRIMARY KEY,
    vehicle_id  bigint NOT NULL REFERENCES vehicles (id),
    user_id     bigint NOT NULL REFERENCES users (id),
    body        text NOT NULL CHECK (length(body) BETWEEN 1 AND 2000),
    status      text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'approved', 'rejected', 'pending_review')),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE answers (
    id          bigserial PRIMARY KEY,
    question_id bigint NOT NULL REFERENCES questions (id),
    user_id     bigint NOT NULL REFERENCES users (id),
    body        text NOT NULL CHECK (length(body) BETWEEN 1 AND 2000),
    status      text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'approved', 'rejected', 'pending_review')),
    created_at  timestamptz NOT NULL DEFAULT now()
);
