-- API keys: an optional expiry, the last time a key was used (written at most about once a minute per
-- key and server process, never per RPC), and an optional binding to a client certificate identity
-- (mutual TLS): a bound key is refused over a connection whose certificate does not carry it.
ALTER TABLE api_keys
    ADD COLUMN expires_at        timestamptz,
    ADD COLUMN last_used_at      timestamptz,
    ADD COLUMN bound_cert_subject text NOT NULL DEFAULT '',
    ADD COLUMN bound_san          text NOT NULL DEFAULT '';
