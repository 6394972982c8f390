/*
 * event_checks.h
 *		The checks of an event's type and payload (event_checks.c).
 */
#ifndef WEBHOOK_EVENT_CHECKS_H
#define WEBHOOK_EVENT_CHECKS_H

/* Longest event type or subscription pattern (Svix allows 256 bytes too). */
#define WEBHOOK_EVENT_TYPE_MAX_BYTES 256

extern void webhook_require_unreserved(const char *name, const char *what);
extern void webhook_require_event_type_name(text *value, bool pattern);
extern void webhook_require_payload_size(int64 bytes, bool from_watch);

#endif							/* WEBHOOK_EVENT_CHECKS_H */
