-- PostgreSQL stand-in for the Oracle ERP (same tables, sequence and trigger semantics as oracle.sql).
-- Statements end with a line holding "/".
CREATE TABLE stock_items (
    stock_no      varchar(20)    NOT NULL PRIMARY KEY,
    vin           char(17)       NOT NULL,
    yard          varchar(40)    NOT NULL,
    location      varchar(40),
    status        varchar(12)    NOT NULL DEFAULT 'IN_TRANSIT'
                  CHECK (status IN ('IN_TRANSIT', 'IN_STOCK', 'IN_RECON', 'ON_HOLD', 'SOLD')),
    title_status  varchar(12)    NOT NULL DEFAULT 'PENDING'
                  CHECK (title_status IN ('CLEAN', 'PENDING', 'LIEN', 'SALVAGE', 'REBUILT', 'MISSING')),
    keys_count    numeric(2)     NOT NULL DEFAULT 2 CHECK (keys_count BETWEEN 0 AND 9),
    arrival_date  timestamp(0),
    cost          numeric(12, 2)
)
/
CREATE INDEX stock_items_vin_idx ON stock_items (vin)
/
CREATE SEQUENCE stock_changes_seq START WITH 1 INCREMENT BY 1
/
CREATE TABLE stock_changes (
    change_id         numeric(19)    NOT NULL PRIMARY KEY,
    txn_id            varchar(64),
    op                char(1)        NOT NULL,
    changed_at        timestamp      NOT NULL DEFAULT localtimestamp,
    old_stock_no      varchar(20),
    old_vin           char(17),
    old_yard          varchar(40),
    old_location      varchar(40),
    old_status        varchar(12),
    old_title_status  varchar(12),
    old_keys_count    numeric(2),
    old_arrival_date  timestamp(0),
    old_cost          numeric(12, 2),
    new_stock_no      varchar(20),
    new_vin           char(17),
    new_yard          varchar(40),
    new_location      varchar(40),
    new_status        varchar(12),
    new_title_status  varchar(12),
    new_keys_count    numeric(2),
    new_arrival_date  timestamp(0),
    new_cost          numeric(12, 2)
)
/
CREATE TABLE hub_capture_state (
    name        varchar(64)    NOT NULL PRIMARY KEY,
    high_water  numeric(19)    NOT NULL,
    gaps        varchar(4000)  NOT NULL,
    updated_at  timestamp      NOT NULL
)
/
CREATE FUNCTION stock_items_cdc() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- OLD is NULL for an INSERT and NEW for a DELETE (PostgreSQL 11+), as :OLD/:NEW in Oracle.
    INSERT INTO stock_changes (
        change_id, txn_id, op, changed_at,
        old_stock_no, old_vin, old_yard, old_location, old_status, old_title_status, old_keys_count,
        old_arrival_date, old_cost,
        new_stock_no, new_vin, new_yard, new_location, new_status, new_title_status, new_keys_count,
        new_arrival_date, new_cost
    ) VALUES (
        nextval('stock_changes_seq'), pg_current_xact_id()::text,
        CASE TG_OP WHEN 'INSERT' THEN 'c' WHEN 'UPDATE' THEN 'u' ELSE 'd' END, clock_timestamp(),
        OLD.stock_no, OLD.vin, OLD.yard, OLD.location, OLD.status, OLD.title_status, OLD.keys_count,
        OLD.arrival_date, OLD.cost,
        NEW.stock_no, NEW.vin, NEW.yard, NEW.location, NEW.status, NEW.title_status, NEW.keys_count,
        NEW.arrival_date, NEW.cost
    );
    RETURN NULL;
END
$$
/
CREATE TRIGGER stock_items_cdc AFTER INSERT OR UPDATE OR DELETE ON stock_items
FOR EACH ROW EXECUTE FUNCTION stock_items_cdc()
/
