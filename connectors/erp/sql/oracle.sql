-- The ERP's stock ledger and its trigger-fed change log (Oracle 12c+). Statements end with a line holding "/".
-- Install as the ERP schema owner (e.g. ERP). The hub's connector needs SELECT on STOCK_ITEMS and STOCK_CHANGES,
-- DELETE on STOCK_CHANGES (purge of captured rows) and SELECT/INSERT/UPDATE on HUB_CAPTURE_STATE.
CREATE TABLE stock_items (
    stock_no      VARCHAR2(20)  NOT NULL PRIMARY KEY,
    vin           CHAR(17)      NOT NULL,
    yard          VARCHAR2(40)  NOT NULL,
    location      VARCHAR2(40),
    status        VARCHAR2(12)  DEFAULT 'IN_TRANSIT' NOT NULL
                  CHECK (status IN ('IN_TRANSIT', 'IN_STOCK', 'IN_RECON', 'ON_HOLD', 'SOLD')),
    title_status  VARCHAR2(12)  DEFAULT 'PENDING' NOT NULL
                  CHECK (title_status IN ('CLEAN', 'PENDING', 'LIEN', 'SALVAGE', 'REBUILT', 'MISSING')),
    keys_count    NUMBER(2)     DEFAULT 2 NOT NULL CHECK (keys_count BETWEEN 0 AND 9),
    arrival_date  DATE,
    cost          NUMBER(12, 2)
)
/
CREATE INDEX stock_items_vin_idx ON stock_items (vin)
/
-- NOORDER is fine on a single instance; on RAC the change ids of two instances interleave out of commit order,
-- which the connector's gap tracking absorbs like any other late commit.
CREATE SEQUENCE stock_changes_seq START WITH 1 INCREMENT BY 1 CACHE 100
/
CREATE TABLE stock_changes (
    change_id         NUMBER(19)    NOT NULL PRIMARY KEY,
    txn_id            VARCHAR2(64),
    op                CHAR(1)       NOT NULL,
    changed_at        TIMESTAMP     DEFAULT SYSTIMESTAMP NOT NULL,
    old_stock_no      VARCHAR2(20),
    old_vin           CHAR(17),
    old_yard          VARCHAR2(40),
    old_location      VARCHAR2(40),
    old_status        VARCHAR2(12),
    old_title_status  VARCHAR2(12),
    old_keys_count    NUMBER(2),
    old_arrival_date  DATE,
    old_cost          NUMBER(12, 2),
    new_stock_no      VARCHAR2(20),
    new_vin           CHAR(17),
    new_yard          VARCHAR2(40),
    new_location      VARCHAR2(40),
    new_status        VARCHAR2(12),
    new_title_status  VARCHAR2(12),
    new_keys_count    NUMBER(2),
    new_arrival_date  DATE,
    new_cost          NUMBER(12, 2)
)
/
CREATE TABLE hub_capture_state (
    name        VARCHAR2(64)    NOT NULL PRIMARY KEY,
    high_water  NUMBER(19)      NOT NULL,
    gaps        VARCHAR2(4000)  NOT NULL,
    updated_at  TIMESTAMP       NOT NULL
)
/
CREATE OR REPLACE TRIGGER stock_items_cdc
AFTER INSERT OR UPDATE OR DELETE ON stock_items
FOR EACH ROW
DECLARE
    v_op CHAR(1);
BEGIN
    IF INSERTING THEN
        v_op := 'c';
    ELSIF UPDATING THEN
        v_op := 'u';
    ELSE
        v_op := 'd';
    END IF;
    INSERT INTO stock_changes (
        change_id, txn_id, op, changed_at,
        old_stock_no, old_vin, old_yard, old_location, old_status, old_title_status, old_keys_count,
        old_arrival_date, old_cost,
        new_stock_no, new_vin, new_yard, new_location, new_status, new_title_status, new_keys_count,
        new_arrival_date, new_cost
    ) VALUES (
        stock_changes_seq.NEXTVAL, DBMS_TRANSACTION.LOCAL_TRANSACTION_ID, v_op, SYSTIMESTAMP,
        :OLD.stock_no, :OLD.vin, :OLD.yard, :OLD.location, :OLD.status, :OLD.title_status, :OLD.keys_count,
        :OLD.arrival_date, :OLD.cost,
        :NEW.stock_no, :NEW.vin, :NEW.yard, :NEW.location, :NEW.status, :NEW.title_status, :NEW.keys_count,
        :NEW.arrival_date, :NEW.cost
    );
END;
/
