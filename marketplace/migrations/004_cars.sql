-- Cars API: a dealer's inventory is listed newest first among the cars not deleted.
CREATE INDEX vehicles_dealer_inventory_idx ON vehicles (dealer_id, id DESC) WHERE deleted_at IS NULL;
