/*
 * endpoint_tls.h
 *		The PEM checks of an endpoint's TLS columns: ca_cert, client_cert and
 *		client_key (the trigger webhook._endpoints_seal calls them).
 */
#ifndef WEBHOOK_ENDPOINT_TLS_H
#define WEBHOOK_ENDPOINT_TLS_H

/* The largest PEM text each column takes, in bytes. */
#define WEBHOOK_TLS_CA_CERT_MAX_BYTES (256 * 1024)
#define WEBHOOK_TLS_CLIENT_CERT_MAX_BYTES (64 * 1024)
#define WEBHOOK_TLS_CLIENT_KEY_MAX_BYTES (16 * 1024)

extern void webhook_require_tls_ca(const char *pem);
extern void webhook_require_tls_client(const char *cert_pem, const char *key_pem);

#endif							/* WEBHOOK_ENDPOINT_TLS_H */
