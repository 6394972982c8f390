/*
 * waitset.h
 *		libcurl's sockets, the latch and postmaster death in one WaitEventSet.
 */
#ifndef WEBHOOK_WAITSET_H
#define WEBHOOK_WAITSET_H

#include <curl/curl.h>

#include "storage/latch.h"

extern void waitset_init(int max_sockets);
extern void waitset_reset(void);
extern int	waitset_socket_callback(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp);
extern int	waitset_close_callback(void *clientp, curl_socket_t fd);
extern void waitset_sync(void);
extern int	waitset_wait(long timeout_ms, WaitEvent *occurred, int max_events, bool *latch_set);

#endif							/* WEBHOOK_WAITSET_H */
