-- operations.sql's endpoints: order.*, nothing, everything, and an inactive one.
INSERT INTO webhook.endpoints (id, name, url, event_types) VALUES
    (9301, 'orders', 'https://example.com/orders', '{order.*}'),
    (9302, 'nothing', 'https://example.com/nothing', '{}'),
    (9304, 'everything', 'https://example.com/everything', '{*}');
INSERT INTO webhook.endpoints (id, name, url, active) VALUES (9303, 'paused', 'https://example.com/paused', false);
