-- 运行库 operational: what the platform works on. `contracts` is the desensitised copy of
-- classified.contracts (names and ID numbers masked) that the extract-desensitised job keeps
-- current; `uploads` holds the provinces' incremental uploads (access-gateway).
-- Applied by the postgresql role as the database owner; idempotent (IF NOT EXISTS).
BEGIN;
SET LOCAL ROLE operational_owner;
CREATE TABLE IF NOT EXISTS contracts (
    contract_id       text PRIMARY KEY,
    contractor        text NOT NULL,          -- masked: 张**
    id_number         text NOT NULL,          -- masked: 110***********1234
    village_code      text NOT NULL,
    area_mu           numeric(12, 2) NOT NULL,
    source_updated_at timestamptz NOT NULL,   -- classified.contracts.updated_at
    extracted_at      timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS uploads (
    upload_id   text PRIMARY KEY,             -- sha256 prefix of the canonical body
    province    text NOT NULL,
    batch       text NOT NULL,
    body        jsonb NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);
COMMIT;
