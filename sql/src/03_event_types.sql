------------------------------------------------------------------------------
-- Tables
------------------------------------------------------------------------------

-- The catalogue of topics. Advisory unless webhook.strict_event_types is on.
CREATE TABLE webhook.event_types (
    name        text PRIMARY KEY
                CONSTRAINT event_types_name_check CHECK (webhook._is_event_type_name(name)),
    description text,
    created_at  timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE webhook.event_types IS 'catalogue of event types that endpoints can subscribe to';

-- A bad name gets the same error as in webhook.send(), not the CHECK's.
CREATE FUNCTION webhook._event_types_before_write()
RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM webhook._require_event_type(NEW.name, false);
    RETURN NEW;
END;
$$;

CREATE TRIGGER event_types_before_write
    BEFORE INSERT OR UPDATE ON webhook.event_types
    FOR EACH ROW EXECUTE FUNCTION webhook._event_types_before_write();

INSERT INTO webhook.event_types (name, description) VALUES
    ('webhook.ping', 'a test event sent to one endpoint by webhook.ping()'),
    ('webhook.endpoint.disabled', 'an endpoint was disabled after failing for too long');
