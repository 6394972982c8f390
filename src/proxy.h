/*
 * proxy.h
 *		Egress proxies (proxy.c): the webhook.proxy setting, the endpoints'
 *		proxy column, and how the worker sends a request through either.
 */
#ifndef WEBHOOK_PROXY_H
#define WEBHOOK_PROXY_H

#include "delivery.h"

extern char *webhook_proxy;

extern void WebhookProxyGucInit(void);
extern void proxy_choose(Delivery *d, char *column);
extern bool proxy_setting_changed(void);
extern void proxy_configure_transfer(Delivery *d);
extern void proxy_describe_error(Delivery *d);

#endif							/* WEBHOOK_PROXY_H */
