-- The sample schema the CDC tests change. Idempotent: runs again whenever the service restarts.
CREATE DATABASE IF NOT EXISTS inventory;

CREATE TABLE IF NOT EXISTS inventory.customers (
    id          int AUTO_INCREMENT PRIMARY KEY,
    first_name  varchar(255) NOT NULL,
    last_name   varchar(255) NOT NULL,
    email       varchar(255) NOT NULL UNIQUE,
    created_at  timestamp(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)
) ENGINE = InnoDB;

CREATE TABLE IF NOT EXISTS inventory.products (
    id          int AUTO_INCREMENT PRIMARY KEY,
    name        varchar(255) NOT NULL,
    description text,
    weight_kg   decimal(10, 3),
    price       decimal(12, 2) NOT NULL,
    created_on  date NOT NULL DEFAULT (CURRENT_DATE)
) ENGINE = InnoDB;

CREATE TABLE IF NOT EXISTS inventory.orders (
    id          int AUTO_INCREMENT PRIMARY KEY,
    order_date  date NOT NULL,
    purchaser   int NOT NULL,
    product_id  int NOT NULL,
    quantity    int NOT NULL,
    CONSTRAINT orders_purchaser_fk FOREIGN KEY (purchaser) REFERENCES inventory.customers (id),
    CONSTRAINT orders_product_fk FOREIGN KEY (product_id) REFERENCES inventory.products (id)
) ENGINE = InnoDB;

INSERT IGNORE INTO inventory.customers (id, first_name, last_name, email) VALUES
    (1001, 'Sally', 'Thomas', 'sally.thomas@acme.example'),
    (1002, 'George', 'Bailey', 'gbailey@foobar.example'),
    (1003, 'Edward', 'Walker', 'ed@walker.example'),
    (1004, 'Anne', 'Kretchmar', 'annek@noanswer.example');

INSERT IGNORE INTO inventory.products (id, name, description, weight_kg, price) VALUES
    (101, 'scooter', 'Small 2-wheel scooter', 3.140, 49.99),
    (102, 'car battery', '12V car battery', 8.100, 89.00),
    (103, '12-pack drill bits', '12-pack of drill bits with sizes ranging from #40 to #3', 0.800, 12.50),
    (104, 'hammer', '12oz carpenter''s hammer', 0.750, 15.00),
    (105, 'rocks', 'box of assorted rocks', 5.300, 7.25);

INSERT IGNORE INTO inventory.orders (id, order_date, purchaser, product_id, quantity) VALUES
    (10001, '2026-01-16', 1001, 102, 1),
    (10002, '2026-01-17', 1002, 105, 2),
    (10003, '2026-02-19', 1002, 101, 2),
    (10004, '2026-02-21', 1003, 103, 1);
