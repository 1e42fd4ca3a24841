-- Live bidding's durable side: every bid the engine accepted (idempotent by its engine id), retractions of
-- pre-bid maximums, each lot's result at the close and the seller's "if bid" decision.

-- A bid from the engine: `bid_ref` is its id ("lotId-seq"), `seq` its arrival number on the lot, `amount` the
-- bidder's maximum (secret), `price_after` the lot's price once it was settled. Bids inserted before live bidding
-- (demo data) have no `bid_ref` and are not replayed into the engine.
ALTER TABLE bids ADD COLUMN bid_ref text;
ALTER TABLE bids ADD COLUMN seq integer CHECK (seq > 0);
ALTER TABLE bids ADD COLUMN kind text CHECK (kind IN ('max', 'live'));
ALTER TABLE bids ADD COLUMN price_after numeric(12, 2);
ALTER TABLE bids ADD COLUMN ends_at timestamptz;
CREATE UNIQUE INDEX bids_bid_ref_key ON bids (bid_ref);
CREATE INDEX bids_lot_seq_idx ON bids (lot_id, seq) WHERE seq IS NOT NULL;

-- A maximum withdrawn while the lot was scheduled (it takes an arrival number like a bid).
CREATE TABLE bid_retractions (
    bid_ref      text PRIMARY KEY,
    lot_id       bigint NOT NULL REFERENCES auction_lots (id),
    user_id      bigint NOT NULL REFERENCES users (id),
    seq          integer NOT NULL CHECK (seq > 0),
    retracted_at timestamptz NOT NULL
);
CREATE INDEX bid_retractions_lot_idx ON bid_retractions (lot_id, seq);

-- A lot's live state as last persisted: `bid_seq` orders writes of concurrent persisters (an older one never
-- overwrites a newer price); `ends_at` is the end after soft-close extensions. `if_bid`: closed below the
-- reserve, waiting for the seller.
ALTER TABLE auction_lots ADD COLUMN bid_seq integer NOT NULL DEFAULT 0;
ALTER TABLE auction_lots ADD COLUMN ends_at timestamptz;
ALTER TABLE auction_lots DROP CONSTRAINT auction_lots_status_check;
ALTER TABLE auction_lots ADD CONSTRAINT auction_lots_status_check
    CHECK (status IN ('open', 'if_bid', 'sold', 'unsold', 'withdrawn'));

-- The result of a closed lot. `outcome` is what the engine decided at the close; `status` where it stands:
-- sold | unsold | pending_seller (if bid: the seller accepts, counters or declines) | countered (the high
-- bidder accepts or declines the seller's counter-offer).
CREATE TABLE lot_results (
    lot_id         bigint PRIMARY KEY REFERENCES auction_lots (id),
    auction_id     bigint NOT NULL REFERENCES auctions (id),
    outcome        text NOT NULL CHECK (outcome IN ('sold', 'if_bid', 'no_bids')),
    high_bid       numeric(12, 2),
    high_bidder_id bigint REFERENCES users (id),
    bid_count      integer NOT NULL CHECK (bid_count >= 0),
    closed_at      timestamptz NOT NULL,
    status         text NOT NULL CHECK (status IN ('sold', 'unsold', 'pending_seller', 'countered')),
    final_price    numeric(12, 2),
    counter_amount numeric(12, 2) CHECK (counter_amount > 0),
    decided_at     timestamptz,
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX lot_results_auction_idx ON lot_results (auction_id);
CREATE INDEX lot_results_pending_idx ON lot_results (status) WHERE status IN ('pending_seller', 'countered');

-- The scheduler finds lots to open and close without scanning closed auctions.
CREATE INDEX auction_lots_open_idx ON auction_lots (auction_id) WHERE status = 'open';
