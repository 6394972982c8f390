/*
 * validate.h
 *		Endpoint URL checks and the network policy from settings.
 */
#ifndef WEBHOOK_VALIDATE_H
#define WEBHOOK_VALIDATE_H

#include "netguard.h"

/* Longest event type or subscription pattern (Svix allows 256 bytes too). */
#define WEBHOOK_EVENT_TYPE_MAX_BYTES 256

extern void webhook_require_unreserved(const char *name, const char *what);
extern bool webhook_current_policy(NetGuardPolicy *policy, char *errbuf, size_t errlen);

#endif							/* WEBHOOK_VALIDATE_H */
