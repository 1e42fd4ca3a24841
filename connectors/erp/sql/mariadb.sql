-- MariaDB (10.6+) stand-in for the Oracle ERP (same tables, sequence and trigger semantics as oracle.sql).
-- Statements end with a line holding "/". MariaDB has one trigger per event, hence three. A trigger cannot read its
-- transaction's id reliably (INFORMATION_SCHEMA.INNODB_TRX is a cached view), so TXN_ID stays NULL here.
CREATE TABLE stock_items (
    stock_no      varchar(20)    NOT NULL PRIMARY KEY,
    vin           char(17)       NOT NULL,
    yard          varchar(40)    NOT NULL,
    location      varchar(40),
    status        varchar(12)    NOT NULL DEFAULT 'IN_TRANSIT'
                  CHECK (status IN ('IN_TRANSIT', 'IN_STOCK', 'IN_RECON', 'ON_HOLD', 'SOLD')),
    title_status  varchar(12)    NOT NULL DEFAULT 'PENDING'
                  CHECK (title_status IN ('CLEAN', 'PENDING', 'LIEN', 'SALVAGE', 'REBUILT', 'MISSING')),
    keys_count    decimal(2)     NOT NULL DEFAULT 2 CHECK (keys_count BETWEEN 0 AND 9),
    arrival_date  datetime,
    cost          decimal(12, 2),
    KEY stock_items_vin_idx (vin)
) ENGINE = InnoDB
/
CREATE SEQUENCE stock_changes_seq START WITH 1 INCREMENT BY 1 NOCACHE
/
CREATE TABLE stock_changes (
    change_id         decimal(19)    NOT NULL PRIMARY KEY,
    txn_id            varchar(64),
    op                char(1)        NOT NULL,
    changed_at        datetime(6)    NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    old_stock_no      varchar(20),
    old_vin           char(17),
    old_yard          varchar(40),
    old_location      varchar(40),
    old_status        varchar(12),
    old_title_status  varchar(12),
    old_keys_count    decimal(2),
    old_arrival_date  datetime,
    old_cost          decimal(12, 2),
    new_stock_no      varchar(20),
    new_vin           char(17),
    new_yard          varchar(40),
    new_location      varchar(40),
    new_status        varchar(12),
    new_title_status  varchar(12),
    new_keys_count    decimal(2),
    new_arrival_date  datetime,
    new_cost          decimal(12, 2)
) ENGINE = InnoDB
/
CREATE TABLE hub_capture_state (
    name        varchar(64)    NOT NULL PRIMARY KEY,
    high_water  decimal(19)    NOT NULL,
    gaps        varchar(4000)  NOT NULL,
    updated_at  datetime(6)    NOT NULL
) ENGINE = InnoDB
/
CREATE TRIGGER stock_items_cdc_c AFTER INSERT ON stock_items
FOR EACH ROW
INSERT INTO stock_changes (
        change_id, txn_id, op, changed_at,
        old_stock_no, old_vin, old_yard, old_location, old_status, old_title_status, old_keys_count, old_arrival_date, old_cost,
        new_stock_no, new_vin, new_yard, new_location, new_status, new_title_status, new_keys_count, new_arrival_date, new_cost
    ) VALUES (
        NEXTVAL(stock_changes_seq),
        NULL,
        'c', CURRENT_TIMESTAMP(6),
        NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
        NEW.stock_no, NEW.vin, NEW.yard, NEW.location, NEW.status, NEW.title_status, NEW.keys_count, NEW.arrival_date, NEW.cost
    )
/
CREATE TRIGGER stock_items_cdc_u AFTER UPDATE ON stock_items
FOR EACH ROW
INSERT INTO stock_changes (
        change_id, txn_id, op, changed_at,
        old_stock_no, old_vin, old_yard, old_location, old_status, old_title_status, old_keys_count, old_arrival_date, old_cost,
        new_stock_no, new_vin, new_yard, new_location, new_status, new_title_status, new_keys_count, new_arrival_date, new_cost
    ) VALUES (
        NEXTVAL(stock_changes_seq),
        NULL,
        'u', CURRENT_TIMESTAMP(6),
        OLD.stock_no, OLD.vin, OLD.yard, OLD.location, OLD.status, OLD.title_status, OLD.keys_count, OLD.arrival_date, OLD.cost,
        NEW.stock_no, NEW.vin, NEW.yard, NEW.location, NEW.status, NEW.title_status, NEW.keys_count, NEW.arrival_date, NEW.cost
    )
/
CREATE TRIGGER stock_items_cdc_d AFTER DELETE ON stock_items
FOR EACH ROW
INSERT INTO stock_changes (
        change_id, txn_id, op, changed_at,
        old_stock_no, old_vin, old_yard, old_location, old_status, old_title_status, old_keys_count, old_arrival_date, old_cost,
        new_stock_no, new_vin, new_yard, new_location, new_status, new_title_status, new_keys_count, new_arrival_date, new_cost
    ) VALUES (
        NEXTVAL(stock_changes_seq),
        NULL,
        'd', CURRENT_TIMESTAMP(6),
        OLD.stock_no, OLD.vin, OLD.yard, OLD.location, OLD.status, OLD.title_status, OLD.keys_count, OLD.arrival_date, OLD.cost,
        NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
    )
/
