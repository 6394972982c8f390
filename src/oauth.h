/*
 * oauth.h
 *		OAuth2 client credentials in the worker (oauth.c): tokens fetched
 *		through the worker's multi handle, cached per endpoint, sent as
 *		Authorization: Bearer.  The columns are checked by endpoint_oauth.c.
 */
#ifndef WEBHOOK_OAUTH_H
#define WEBHOOK_OAUTH_H

#include "lib/ilist.h"

#include "delivery.h"

/* A token endpoint's answer is read up to this many bytes. */
#define OAUTH_TOKEN_RESPONSE_MAX (16 * 1024)

extern void oauth_send(Delivery *d, dlist_head *failed);
extern bool oauth_transfer_done(Delivery *d, dlist_head *failed);
extern struct curl_slist *oauth_token_request_headers(void);
extern int	oauth_waiting(void);

#endif							/* WEBHOOK_OAUTH_H */
