-- webhook @EXTVERSION@: transactional outgoing webhooks, delivered by a background worker.
-- Every object is schema-qualified; nothing here depends on the caller's search_path.

\echo Use "CREATE EXTENSION webhook" to load this file. \quit
