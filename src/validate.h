/*
 * validate.h
 *		Endpoint URL checks and the network policy from settings.
 */
#ifndef WEBHOOK_VALIDATE_H
#define WEBHOOK_VALIDATE_H

#include "netguard.h"

extern bool webhook_current_policy(NetGuardPolicy *policy, char *errbuf, size_t errlen);

#endif							/* WEBHOOK_VALIDATE_H */
