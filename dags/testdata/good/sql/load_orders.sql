-- Stage and load one day of orders.
COPY INTO raw.orders FROM @raw.stage/orders/{{ ds }}/ FILE_FORMAT = (TYPE = 'JSON');
DELETE FROM analytics.orders WHERE order_date = '{{ ds }}';
INSERT INTO analytics.orders SELECT * FROM raw.orders WHERE order_date = '{{ ds }}';
