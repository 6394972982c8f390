/*
 * wake.h
 *		Hooks that wake, start or stop workers when transactions commit and
 *		DDL runs (wake.c).
 */
#ifndef WEBHOOK_WAKE_H
#define WEBHOOK_WAKE_H

extern void WebhookWakeInit(void);
extern void webhook_wake_worker_at_commit_flag(void);

#endif							/* WEBHOOK_WAKE_H */
