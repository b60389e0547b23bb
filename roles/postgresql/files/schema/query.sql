-- 查询库 query: what the public query service reads (on the replica). Only the masked
-- contractor name and the contract's public facts; no ID number at all.
-- Refreshed from operational.contracts by the extract-desensitised job.
-- Applied by the postgresql role as the database owner; idempotent (IF NOT EXISTS).
BEGIN;
SET LOCAL ROLE query_owner;
CREATE TABLE IF NOT EXISTS contracts (
    contract_id  text PRIMARY KEY,
    contractor   text NOT NULL,               -- masked
    village_code text NOT NULL,
    area_mu      numeric(12, 2) NOT NULL,
    refreshed_at timestamptz NOT NULL DEFAULT now()
);
COMMIT;
