-- Auctions: lookups the write API makes on lists and participants
-- (auction_lots (vehicle_id) and auctions (dealer_id) are indexed by 003).

-- The list of auctions is ordered by schedule.
CREATE INDEX auctions_starts_at_idx ON auctions (starts_at, id);
-- Participants of an auction group its bids by bidder.
CREATE INDEX bids_lot_user_idx ON bids (lot_id, user_id);
