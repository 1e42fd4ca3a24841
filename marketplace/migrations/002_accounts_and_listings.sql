-- Accounts (refresh tokens, account deletion), dealer verification, per-dealer VINs, richer auction lots.

-- Rotating refresh tokens, stored as hashes; a family is every token descended from one login.
CREATE TABLE refresh_tokens (
    id          bigserial PRIMARY KEY,
    user_id     bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family_id   uuid NOT NULL,
    token_hash  bytea NOT NULL UNIQUE,
    issued_at   timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    rotated_at  timestamptz,
    revoked_at  timestamptz
);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user_idx ON refresh_tokens (user_id);

-- A deleted account keeps its row (bids and auctions refer to it) without personal data.
ALTER TABLE users ADD COLUMN deleted_at timestamptz;
ALTER TABLE users ADD COLUMN phone text;

ALTER TABLE dealers ADD COLUMN address text;
ALTER TABLE dealers ADD COLUMN licence_number text;
ALTER TABLE dealers ADD COLUMN contact_email text;
ALTER TABLE dealers ADD COLUMN status text NOT NULL DEFAULT 'verified'
    CHECK (status IN ('pending', 'verified', 'suspended'));
ALTER TABLE dealers ALTER COLUMN status SET DEFAULT 'pending';
CREATE UNIQUE INDEX dealers_licence_number_key ON dealers (licence_number) WHERE licence_number IS NOT NULL;
CREATE UNIQUE INDEX dealers_owner_key ON dealers (owner_id) WHERE owner_id IS NOT NULL;

-- A VIN is listed once per dealer (a car sold on to another dealer may be listed again there).
ALTER TABLE vehicles DROP CONSTRAINT vehicles_vin_key;
CREATE UNIQUE INDEX vehicles_dealer_vin_key ON vehicles (dealer_id, vin) WHERE deleted_at IS NULL;
CREATE INDEX vehicles_vin_idx ON vehicles (vin);

-- Lots: an optional buy-now price and a bid increment table [[from_price, increment], ...].
ALTER TABLE auction_lots ADD COLUMN buy_now_price numeric(12, 2) CHECK (buy_now_price > 0);
ALTER TABLE auction_lots ADD COLUMN bid_increments jsonb NOT NULL DEFAULT '[[0, 100]]';
ALTER TABLE auctions ADD COLUMN description text;
