/*
 * webhook.h
 *		The extension's settings (webhook.* GUCs), defined in module.c.  Each
 *		subsystem has its own header for the rest.
 */
#ifndef WEBHOOK_H
#define WEBHOOK_H

#include "postgres.h"

extern int	webhook_max_in_flight;
extern int	webhook_max_in_flight_per_endpoint;
extern int	webhook_batch_size;
extern int	webhook_workers;
extern int	webhook_connect_timeout_ms;
extern int	webhook_response_body_limit_kb;
extern double webhook_retry_delay_scale;
extern bool webhook_allow_private_networks;
extern char *webhook_allowed_networks;
extern bool webhook_require_https;
extern int	webhook_max_payload_bytes;
extern bool webhook_strict_event_types;
extern int	webhook_disable_after_s;
extern int	webhook_retention_succeeded_s;
extern int	webhook_retention_failed_s;
extern int	webhook_transform_timeout_ms;
extern int	webhook_record_delay_ms;

#endif							/* WEBHOOK_H */
