-- The sample schema the CDC tests change. Idempotent: runs again whenever the service restarts.
-- REPLICA IDENTITY FULL gives Debezium complete "before" images for updates and deletes.
CREATE SCHEMA IF NOT EXISTS inventory;

CREATE TABLE IF NOT EXISTS inventory.customers (
    id          serial PRIMARY KEY,
    first_name  varchar(255) NOT NULL,
    last_name   varchar(255) NOT NULL,
    email       varchar(255) NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS inventory.products (
    id          serial PRIMARY KEY,
    name        varchar(255) NOT NULL,
    description text,
    weight_kg   numeric(10, 3),
    price       numeric(12, 2) NOT NULL,
    created_on  date NOT NULL DEFAULT current_date
);

CREATE TABLE IF NOT EXISTS inventory.orders (
    id          serial PRIMARY KEY,
    order_date  date NOT NULL,
    purchaser   integer NOT NULL REFERENCES inventory.customers (id),
    product_id  integer NOT NULL REFERENCES inventory.products (id),
    quantity    integer NOT NULL CHECK (quantity > 0)
);

-- Captured by the Avro connector (every inventory.avro_* table is): its events go through the schema
-- registry, where the JSON connector's go nowhere near it.
CREATE TABLE IF NOT EXISTS inventory.avro_customers (
    id          integer PRIMARY KEY,
    first_name  varchar(255) NOT NULL,
    last_name   varchar(255) NOT NULL,
    email       varchar(255) NOT NULL UNIQUE
);

ALTER TABLE inventory.customers REPLICA IDENTITY FULL;
ALTER TABLE inventory.products REPLICA IDENTITY FULL;
ALTER TABLE inventory.orders REPLICA IDENTITY FULL;
ALTER TABLE inventory.avro_customers REPLICA IDENTITY FULL;

INSERT INTO inventory.customers (id, first_name, last_name, email) VALUES
    (1001, 'Sally', 'Thomas', 'sally.thomas@acme.example'),
    (1002, 'George', 'Bailey', 'gbailey@foobar.example'),
    (1003, 'Edward', 'Walker', 'ed@walker.example'),
    (1004, 'Anne', 'Kretchmar', 'annek@noanswer.example')
ON CONFLICT (id) DO NOTHING;

INSERT INTO inventory.avro_customers (id, first_name, last_name, email) VALUES
    (1001, 'Sally', 'Thomas', 'sally.thomas@acme.example'),
    (1002, 'George', 'Bailey', 'gbailey@foobar.example'),
    (1003, 'Edward', 'Walker', 'ed@walker.example'),
    (1004, 'Anne', 'Kretchmar', 'annek@noanswer.example')
ON CONFLICT (id) DO NOTHING;

INSERT INTO inventory.products (id, name, description, weight_kg, price) VALUES
    (101, 'scooter', 'Small 2-wheel scooter', 3.140, 49.99),
    (102, 'car battery', '12V car battery', 8.100, 89.00),
    (103, '12-pack drill bits', '12-pack of drill bits with sizes ranging from #40 to #3', 0.800, 12.50),
    (104, 'hammer', '12oz carpenter''s hammer', 0.750, 15.00),
    (105, 'rocks', 'box of assorted rocks', 5.300, 7.25)
ON CONFLICT (id) DO NOTHING;

INSERT INTO inventory.orders (id, order_date, purchaser, product_id, quantity) VALUES
    (10001, '2026-01-16', 1001, 102, 1),
    (10002, '2026-01-17', 1002, 105, 2),
    (10003, '2026-02-19', 1002, 101, 2),
    (10004, '2026-02-21', 1003, 103, 1)
ON CONFLICT (id) DO NOTHING;

SELECT setval('inventory.customers_id_seq', GREATEST(1004, (SELECT max(id) FROM inventory.customers)));
SELECT setval('inventory.products_id_seq', GREATEST(105, (SELECT max(id) FROM inventory.products)));
SELECT setval('inventory.orders_id_seq', GREATEST(10004, (SELECT max(id) FROM inventory.orders)));
