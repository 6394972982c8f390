/*
 * request_format.h
 *		What a request looks like for each endpoint format: today's body and
 *		headers, or CloudEvents 1.0 over HTTP in binary or structured mode
 *		(request_format.c).
 */
#ifndef WEBHOOK_REQUEST_FORMAT_H
#define WEBHOOK_REQUEST_FORMAT_H

#include "postgres.h"

#include <curl/curl.h>

#include "access/htup.h"
#include "access/tupdesc.h"

/* The endpoint's format column. */
typedef enum WebhookRequestFormat
{
	FORMAT_STANDARD,			/* the event's body, as fixed at send() */
	FORMAT_CLOUDEVENTS,			/* binary mode: ce-* headers, body = data */
	FORMAT_CLOUDEVENTS_STRUCTURED,	/* one application/cloudevents+json
									 * document */
	FORMAT_UNKNOWN
} WebhookRequestFormat;

/* The event type header sent unless the endpoint names another. */
#define WEBHOOK_DEFAULT_EVENT_TYPE_HEADER "webhook-event-type"

struct Delivery;

extern WebhookRequestFormat request_format_from_name(const char *name);
extern void request_format_from_claim(struct Delivery *d, HeapTuple tuple, TupleDesc desc);
extern void request_format_shape(struct Delivery *d);
extern struct curl_slist *request_format_headers(struct Delivery *d, struct curl_slist *h);
extern char *request_format_event_type_line(struct Delivery *d);

#endif							/* WEBHOOK_REQUEST_FORMAT_H */
