/*
 * url_policy.h
 *		The network policy under the current settings (url_policy.c).
 */
#ifndef WEBHOOK_URL_POLICY_H
#define WEBHOOK_URL_POLICY_H

#include "netguard.h"

extern bool webhook_current_policy(NetGuardPolicy *policy, char *errbuf, size_t errlen);

#endif							/* WEBHOOK_URL_POLICY_H */
