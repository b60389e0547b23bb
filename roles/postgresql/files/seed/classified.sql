-- Demonstration contracts for a lab (postgresql_seed_demo_data: true). Fictitious people:
-- the ID numbers have valid check digits but name nobody. Idempotent (ON CONFLICT DO NOTHING).
BEGIN;
SET LOCAL ROLE classified_owner;
INSERT INTO contracts (contract_id, contractor_name, id_number, village_code, area_mu, parcel)
VALUES
  ('LAB-110101-0001', '张三丰', '110101198001011216', '110101001001', 6.50,
   ST_GeomFromText('MULTIPOLYGON(((116.400 39.900,116.401 39.900,116.401 39.901,116.400 39.901,116.400 39.900)))', 4490)),
  ('LAB-110101-0002', '李四', '11010119900307125X', '110101001001', 3.20,
   ST_GeomFromText('MULTIPOLYGON(((116.402 39.900,116.403 39.900,116.403 39.901,116.402 39.901,116.402 39.900)))', 4490)),
  ('LAB-320102-0003', '欧阳娜娜', '32010219851212009X', '320102002003', 12.75,
   ST_GeomFromText('MULTIPOLYGON(((118.790 32.040,118.792 32.040,118.792 32.042,118.790 32.042,118.790 32.040)))', 4490)),
  ('LAB-650102-0004', '买买提·艾力', '650102197707070012', '650102003004', 20.00,
   ST_GeomFromText('MULTIPOLYGON(((87.600 43.800,87.603 43.800,87.603 43.803,87.600 43.803,87.600 43.800)))', 4490)),
  ('LAB-510104-0005', '王小明', '510104200002290038', '510104004005', 1.80, NULL)
ON CONFLICT (contract_id) DO NOTHING;
COMMIT;
