/*
 * http.h
 *		The worker's requests, driven by one libcurl multi handle inside a
 *		WaitEventSet (http.c).
 */
#ifndef WEBHOOK_HTTP_H
#define WEBHOOK_HTTP_H

#include "delivery.h"

extern void http_init(void);
extern void http_reload_policy(void);
extern void http_start(Delivery *d);
extern bool http_wait(long timeout_ms);
extern void http_send_now(void);
extern void http_stop(void);
extern Delivery *http_next_done(void);
extern int	http_in_flight(void);

#endif							/* WEBHOOK_HTTP_H */
