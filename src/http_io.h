/*
 * http_io.h
 *		The delivery worker's network thread: it owns the libcurl multi
 *		handle and moves requests that http.c prepared (http_io.c).
 */
#ifndef WEBHOOK_HTTP_IO_H
#define WEBHOOK_HTTP_IO_H

#include "delivery.h"
#include "netguard.h"

#define HTTP_RESPONSE_READ_LIMIT (1024 * 1024)	/* stop reading bodies beyond
												 * this */
#define HTTP_RESPONSE_HEADERS_LIMIT (64 * 1024) /* refuse responses with more
												 * header bytes */
/* The address class of a connection refused for an invalid policy. */
#define HTTP_INVALID_POLICY "invalid webhook.allowed_networks"

extern void http_io_start(long max_connections);
extern void http_io_stop(void);
extern void http_io_set_policy(const NetGuardPolicy *policy, bool valid);
extern void http_io_configure(Delivery *d);
extern void http_io_submit(Delivery *d);
extern void http_io_kick(void);
extern void http_io_fresh_connections(void);
extern Delivery *http_io_take_done(void);
extern bool http_io_has_done(void);
extern uint32 http_io_watch_failures(void);
extern pgsocket http_io_done_fd(void);
extern void http_io_clear_done_fd(void);

#endif							/* WEBHOOK_HTTP_IO_H */
