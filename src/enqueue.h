/*
 * enqueue.h
 *		Writing events into webhook.events from C (enqueue.c): send() and the
 *		watch trigger.
 */
#ifndef WEBHOOK_ENQUEUE_H
#define WEBHOOK_ENQUEUE_H

#include "postgres.h"

#include "executor/execdesc.h"
#include "lib/stringinfo.h"
#include "nodes/execnodes.h"
#include "tcop/dest.h"
#include "utils/relcache.h"
#include "utils/uuid.h"

/* Rows buffered before one table_multi_insert, as COPY does. */
#define EVENT_WRITER_BATCH 1000

/*
 * An open batch of events of one type for one statement: the events table
 * (the current generation's partition), its indexes and the values every
 * row of the statement shares.
 */
typedef struct EventWriter
{
	Relation	rel;
	EState	   *estate;
	ResultRelInfo *rri;
	MemoryContext batch_cxt;	/* the buffered rows' values; reset per flush */
	TupleTableSlot *slots[EVENT_WRITER_BATCH];
	int			nbuffered;
	Size		buffered_bytes;
	bool		from_watch;		/* for the size rule's hint */
	Datum		event_type;
	Datum		txid;
	Datum		created_at;
	int16		gen;			/* the generation written into */
	StringInfoData json;		/* a payload's text, reused for the size rule */
	uint64		written;
} EventWriter;

extern void webhook_next_event_id(pg_uuid_t *uuid);
extern void webhook_check_sendable_event_type(text *event_type);
extern bool event_writer_begin(EventWriter *w, text *event_type, bool from_watch);
extern void event_writer_add(EventWriter *w, Datum payload, bool isnull, text *key, pg_uuid_t *id);
extern uint64 event_writer_end(EventWriter *w);
extern DestReceiver *event_writer_receiver(EventWriter *w);

#endif							/* WEBHOOK_ENQUEUE_H */
