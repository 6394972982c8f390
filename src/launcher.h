/*
 * launcher.h
 *		The launcher: one per server, starts a delivery worker per database
 *		that has the extension (launcher.c).
 */
#ifndef WEBHOOK_LAUNCHER_H
#define WEBHOOK_LAUNCHER_H

extern void WebhookLauncherRegister(void);

#endif							/* WEBHOOK_LAUNCHER_H */
