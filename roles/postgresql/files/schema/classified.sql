-- 保密库 classified: the land contracts as registered, with the contractor's real name,
-- ID-card number and parcel geometry. Only the database's owner and the extract read it;
-- no component may connect (pg_hba rejects classified from the application servers).
-- Applied by the postgresql role as the database owner; idempotent (IF NOT EXISTS).
BEGIN;
SET LOCAL ROLE classified_owner;
CREATE TABLE IF NOT EXISTS contracts (
    contract_id     text PRIMARY KEY CHECK (contract_id ~ '^[A-Za-z0-9-]{1,64}$'),
    contractor_name text NOT NULL CHECK (length(contractor_name) BETWEEN 1 AND 64),
    -- 18-digit resident ID number (GB 11643), check digit 0-9 or X
    id_number       text NOT NULL CHECK (id_number ~ '^[0-9]{17}[0-9X]$'),
    -- 12-digit statistical division code of the village (统计用区划代码)
    village_code    text NOT NULL CHECK (village_code ~ '^[0-9]{12}$'),
    area_mu         numeric(12, 2) NOT NULL CHECK (area_mu > 0),
    -- the contracted parcels, CGCS2000 geographic (EPSG:4490)
    parcel          geometry(MultiPolygon, 4490),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS contracts_parcel_gix ON contracts USING gist (parcel);
COMMIT;
