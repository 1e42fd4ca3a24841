-- Dealer pages: list by status/state, a dealer's auctions, and statistics joined from lots to vehicles.
CREATE INDEX dealers_status_state_idx ON dealers (status, state);
CREATE INDEX auctions_dealer_id_idx ON auctions (dealer_id);
CREATE INDEX auction_lots_vehicle_id_idx ON auction_lots (vehicle_id);
-- A licence number is unique whatever its case or surrounding spaces.
DROP INDEX dealers_licence_number_key;
CREATE UNIQUE INDEX dealers_licence_number_key ON dealers (upper(btrim(licence_number))) WHERE licence_number IS NOT NULL;
