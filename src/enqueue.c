/*
 * enqueue.c
 *		Writing events in the application's transaction: send() and the watch
 *		trigger insert webhook.events rows from C, as COPY does (buffered
 *		table_multi_insert, then the index entries), with no PL/pgSQL call,
 *		no jsonb[] round trip and no planned INSERT per statement.  Nothing
 *		is written per endpoint: the delivery worker matches endpoints when
 *		it reads the committed events (queue.c).
 *
 * An event row holds its id, type, payload, time, the writing
 * transaction's id (txid), which is how the worker finds committed events,
 * and its generation: the partition of the queue it goes to.  The writer
 * fills them in itself, so the rows are what the column defaults of
 * webhook.events would give, and writes into the current generation's
 * partition directly.
 */
#include "postgres.h"

#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "common/cryptohash.h"
#include "common/sha2.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "partitioning/partbounds.h"
#include "partitioning/partdesc.h"
#include "tcop/utility.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/xid8.h"

#include "enqueue.h"
#include "event_checks.h"
#include "spi_util.h"
#include "wake.h"
#include "webhook.h"

PG_FUNCTION_INFO_V1(webhook_send);
PG_FUNCTION_INFO_V1(webhook_check_event_type);

/* A flush also comes after this many bytes of payloads, as in COPY. */
#define EVENT_WRITER_BATCH_BYTES 65535

/* The columns of webhook.events that the writer fills; the rest stay NULL. */
typedef enum EventColumn
{
	EVENT_ID,
	EVENT_TYPE,
	EVENT_PAYLOAD,
	EVENT_CREATED_AT,
	EVENT_TXID,
	EVENT_GEN,					/* from 0.5.0 on; may be missing */
	EVENT_ORDERING_KEY,			/* from 0.6.0 on; may be missing */
	EVENT_NCOLUMNS
} EventColumn;

static const char *const event_column_names[EVENT_NCOLUMNS] = {
	"id", "event_type", "payload", "created_at", "txid", "gen", "ordering_key"
};

/* The longest ordering key send() takes, as for idempotency keys and types. */
#define ORDERING_KEY_MAX_BYTES 256

/* The attribute numbers of the current table, found at each begin. */
static AttrNumber event_attnums[EVENT_NCOLUMNS];

static SPIPlanPtr catalogue_plan = NULL;
static SPIPlanPtr keyed_plan = NULL;
static SPIPlanPtr keyed_plan_v05 = NULL;	/* _enqueue before 0.6.0 */
static SPIPlanPtr generation_plan = NULL;

/* The current generation as this backend last read it, and when. */
static TimestampTz generation_read_at = 0;
static int16 generation_read = 0;

/* How long a backend writes into the generation it read before reading again. */
#define GENERATION_REREAD_MS 1000

/* The one error of a missing payload, from send() and from a watch. */
static void
raise_null_payload(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
			 errmsg("payload must not be null"),
			 errhint("Send '{}' for an event without data.")));
}

/*
 * Is the event type in webhook.event_types?  Asked only under
 * webhook.strict_event_types; runs as the caller set it (send()'s definer,
 * or the extension's owner in the watch trigger).
 */
static bool
in_catalogue(text *event_type)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1] = {PointerGetDatum(event_type)};
	int			ret;
	bool		found;

	SPI_connect();
	ret = SPI_execute_plan(webhook_prepare_once(&catalogue_plan,
												"SELECT FROM webhook.event_types t WHERE t.name OPERATOR(pg_catalog.=) $1",
												1, argtypes),
						   values, NULL, true, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read webhook.event_types: %s", SPI_result_code_string(ret));
	found = SPI_processed > 0;
	SPI_finish();
	return found;
}

/*
 * Refuse an event type that a caller may not send: none, not a valid name,
 * one of the extension's own ("webhook.*"), or (when strict) not in the
 * catalogue.  The extension's own events (pings, webhook.endpoint.disabled)
 * do not come through here, so strict mode never refuses them.
 */
void
webhook_check_sendable_event_type(text *event_type)
{
	if (event_type == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("event type must not be null"),
				 errhint("For example: order.created.")));
	webhook_require_event_type_name(event_type, false);
	webhook_require_unreserved(text_to_cstring(event_type), "event type");
	if (webhook_strict_event_types && !in_catalogue(event_type))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("event type \"%s\" is not in webhook.event_types", text_to_cstring(event_type)),
				 errhint("Add it with INSERT INTO webhook.event_types (name, description), or turn webhook.strict_event_types off.")));
}

/* SQL: webhook._check_event_type(type), for watch(), which checks its prefix's types. */
Datum
webhook_check_event_type(PG_FUNCTION_ARGS)
{
	webhook_check_sendable_event_type(PG_ARGISNULL(0) ? NULL : PG_GETARG_TEXT_PP(0));
	PG_RETURN_VOID();
}

/*
 * A column that someone added to webhook.events with a default or NOT NULL
 * would get neither from the writer (an INSERT would): refuse to write
 * rather than store what the column forbids.
 */
static void
refuse_unknown_columns(Relation rel)
{
	for (int a = 0; a < RelationGetNumberOfAttributes(rel); a++)
	{
		Form_pg_attribute att = TupleDescAttr(RelationGetDescr(rel), a);
		bool		known = att->attisdropped;

		for (int c = 0; c < EVENT_NCOLUMNS; c++)
			known |= event_attnums[c] == att->attnum;
		if (!known && (att->attnotnull || att->atthasdef))
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("column \"%s\" of webhook.events is not one the extension writes",
							NameStr(att->attname)),
					 errdetail("It has a default or is NOT NULL, which events written by send() and watches would not honour."),
					 errhint("Drop the column: webhook.events belongs to the extension.")));
	}
}

/*
 * Find the columns the writer fills.  False when the table is not of the
 * shape this library writes (a schema before 0.3.0 has no txid column and
 * needs its own path until ALTER EXTENSION webhook UPDATE; see compat.c).
 * The generation is missing before 0.5.0, whose table is not partitioned,
 * and the ordering key before 0.6.0.
 */
static bool
find_event_columns(Relation rel)
{
	for (int c = 0; c < EVENT_NCOLUMNS; c++)
	{
		event_attnums[c] = InvalidAttrNumber;
		for (int a = 0; a < RelationGetNumberOfAttributes(rel); a++)
		{
			Form_pg_attribute att = TupleDescAttr(RelationGetDescr(rel), a);

			if (!att->attisdropped && strcmp(NameStr(att->attname), event_column_names[c]) == 0)
				event_attnums[c] = att->attnum;
		}
		if (event_attnums[c] == InvalidAttrNumber && c != EVENT_GEN && c != EVENT_ORDERING_KEY)
			return false;
	}
	refuse_unknown_columns(rel);
	return true;
}

/*
 * The generation new events go to (webhook._current_generation), read again
 * when this backend's reading is a second old, so that a busy backend's
 * single-row transactions do not each pay a query.  Any generation is a safe
 * place for an event: retention empties a generation only under locks that
 * wait for its writers, never with an unread event in it, and moves on what
 * must outlive it.  An older reading only means an event that begins its life
 * in a generation that ends sooner.
 */
static int16
current_generation(void)
{
	TimestampTz now = GetCurrentTransactionStartTimestamp();
	bool		isnull;
	int			ret;

	if (generation_read_at != 0 && now >= generation_read_at &&
		!TimestampDifferenceExceeds(generation_read_at, now, GENERATION_REREAD_MS))
		return generation_read;
	SPI_connect();
	ret = SPI_execute_plan(webhook_prepare_once(&generation_plan, "SELECT webhook._current_generation()", 0, NULL),
						   NULL, NULL, true, 1);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not read webhook.queue_generations: %s", SPI_result_code_string(ret));
	generation_read = DatumGetInt16(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	SPI_finish();
	if (isnull)
		generation_read = 0;
	generation_read_at = now;
	return generation_read;
}

/* The partition of webhook.events that holds a generation. */
static Oid
generation_partition(Relation events, int16 gen)
{
	PartitionDesc pd = RelationGetPartitionDesc(events, true);
	PartitionBoundInfo bounds = pd->boundinfo;

	for (int i = 0; bounds != NULL && i < bounds->ndatums; i++)
		if (bounds->indexes[i] >= 0 && DatumGetInt16(bounds->datums[i][0]) == gen)
			return pd->oids[bounds->indexes[i]];
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("webhook.events has no partition for generation %d", gen),
			 errhint("Reinstall the extension: DROP EXTENSION webhook; CREATE EXTENSION webhook.")));
	return InvalidOid;			/* keep the compiler quiet */
}

/*
 * Open webhook.events for a statement's events of one type: the current
 * generation's partition.  Refuses, with INSERT's own errors, where an
 * INSERT would be refused: in a read-only transaction (a standby included)
 * and in parallel mode.  False, with nothing opened, when the table is not
 * of this library's shape.
 */
bool
event_writer_begin(EventWriter *w, text *event_type, bool from_watch)
{
	Oid			relid = get_relname_relid("events", get_namespace_oid("webhook", false));
	Relation	events;

	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("table webhook.events does not exist"),
				 errhint("Reinstall the extension: DROP EXTENSION webhook; CREATE EXTENSION webhook.")));
	PreventCommandIfReadOnly("INSERT");
	PreventCommandIfParallelMode("INSERT");

	memset(w, 0, sizeof(*w));
	events = table_open(relid, RowExclusiveLock);
	if (events->rd_rel->relkind == RELKIND_PARTITIONED_TABLE)
	{
		w->gen = current_generation();
		w->rel = table_open(generation_partition(events, w->gen), RowExclusiveLock);
		table_close(events, NoLock);
	}
	else
		w->rel = events;
	if (w->rel->rd_rel->relkind != RELKIND_RELATION || !find_event_columns(w->rel) ||
		(events != w->rel) != (event_attnums[EVENT_GEN] != InvalidAttrNumber))
	{
		table_close(w->rel, RowExclusiveLock);
		w->rel = NULL;
		return false;
	}
	w->estate = CreateExecutorState();
	w->rri = makeNode(ResultRelInfo);
	InitResultRelInfo(w->rri, w->rel, 1, NULL, 0);
	ExecOpenIndices(w->rri, false);
	w->batch_cxt = AllocSetContextCreate(CurrentMemoryContext, "webhook event batch", ALLOCSET_DEFAULT_SIZES);
	w->from_watch = from_watch;
	w->event_type = PointerGetDatum(event_type);
	w->txid = FullTransactionIdGetDatum(GetTopFullTransactionId());
	w->created_at = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	initStringInfo(&w->json);
	return true;
}

/*
 * Insert the buffered rows, then their index entries (the primary key, the
 * worker's (txid, id) index, the partial idempotency index), as COPY does.
 */
static void
flush_events(EventWriter *w)
{
	MemoryContext oldcontext;

	if (w->nbuffered == 0)
		return;
	/* The heap tuples formed from the virtual slots go with the batch. */
	oldcontext = MemoryContextSwitchTo(w->batch_cxt);
	table_multi_insert(w->rel, w->slots, w->nbuffered, GetCurrentCommandId(true), 0, NULL);
	for (int i = 0; i < w->nbuffered; i++)
	{
		ExecInsertIndexTuples(w->rri, w->slots[i], w->estate, false, false, NULL, NIL);
		ResetPerTupleExprContext(w->estate);
		ExecClearTuple(w->slots[i]);
	}
	MemoryContextSwitchTo(oldcontext);
	w->written += w->nbuffered;
	w->nbuffered = 0;
	w->buffered_bytes = 0;
	MemoryContextReset(w->batch_cxt);
}

/*
 * The size rule, exactly: the payload's JSON text, as jsonb::text writes it,
 * has at most webhook.max_payload_bytes bytes.  The text goes into a buffer
 * reused for every row of the statement.
 */
static void
check_payload_size(StringInfo buf, Jsonb *payload, bool from_watch)
{
	resetStringInfo(buf);
	(void) JsonbToCString(buf, &payload->root, VARSIZE(payload));
	webhook_require_payload_size(buf->len, from_watch);
}

/*
 * The next free slot of the batch, made on first use.  Slots live as long
 * as the writer: they are made in its executor state's memory, not in the
 * caller's, which may be the payload query's per-row context.
 */
static TupleTableSlot *
buffered_slot(EventWriter *w)
{
	if (w->slots[w->nbuffered] == NULL)
	{
		MemoryContext oldcontext = MemoryContextSwitchTo(w->estate->es_query_cxt);

		w->slots[w->nbuffered] = ExecInitExtraTupleSlot(w->estate, RelationGetDescr(w->rel), &TTSOpsVirtual);
		MemoryContextSwitchTo(oldcontext);
	}
	return w->slots[w->nbuffered];
}

/*
 * An event's ordering key as stored.  send() refuses a key that is too
 * long; a watched row's key (its primary key's values) is never refused, as
 * that would fail the application's write: a long one is stored as its
 * SHA-256, which keeps one row's events in one sequence.
 */
static Datum
ordering_key_datum(text *key, bool from_watch)
{
	size_t		len = VARSIZE_ANY_EXHDR(key);
	char		hex[PG_SHA256_DIGEST_STRING_LENGTH];
	uint8		digest[PG_SHA256_DIGEST_LENGTH];
	pg_cryptohash_ctx *ctx;

	if (len == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("ordering key must not be empty"),
				 errhint("Give NULL for an event without a key: it goes in the endpoint's own sequence.")));
	if (len <= ORDERING_KEY_MAX_BYTES)
		return PointerGetDatum(key);
	if (!from_watch)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("ordering key is too long"),
				 errdetail("It has %zu bytes.", len),
				 errhint("An ordering key has at most %d bytes; send a hash of a longer key.",
						 ORDERING_KEY_MAX_BYTES)));
	ctx = pg_cryptohash_create(PG_SHA256);
	if (pg_cryptohash_init(ctx) < 0 ||
		pg_cryptohash_update(ctx, (uint8 *) VARDATA_ANY(key), len) < 0 ||
		pg_cryptohash_final(ctx, digest, sizeof(digest)) < 0)
		elog(ERROR, "could not hash an ordering key: %s", pg_cryptohash_error(ctx));
	pg_cryptohash_free(ctx);
	hex_encode((char *) digest, sizeof(digest), hex);
	hex[PG_SHA256_DIGEST_LENGTH * 2] = '\0';
	return CStringGetTextDatum(psprintf("sha256:%s", hex));
}

/*
 * Buffer one event, checked; the rows go in with the batch.  key is its
 * ordering key, or NULL.  Its id is written into *id when id is not NULL.
 */
void
event_writer_add(EventWriter *w, Datum payload, bool isnull, text *key, pg_uuid_t *id)
{
	Jsonb	   *jb;
	TupleTableSlot *slot;
	MemoryContext oldcontext;
	pg_uuid_t  *event_id;

	if (isnull)
		raise_null_payload();
	slot = buffered_slot(w);

	/*
	 * Everything a row needs (a detoasted payload, what serializing it leaves
	 * behind, the id) lives in the batch's memory, freed at the flush: the
	 * caller's context may be a whole statement's.
	 */
	oldcontext = MemoryContextSwitchTo(w->batch_cxt);
	jb = DatumGetJsonbP(payload);
	check_payload_size(&w->json, jb, w->from_watch);
	ExecClearTuple(slot);
	memset(slot->tts_isnull, true, sizeof(bool) * slot->tts_tupleDescriptor->natts);
	event_id = palloc(UUID_LEN);
	webhook_next_event_id(event_id);
	slot->tts_values[event_attnums[EVENT_ID] - 1] = UUIDPGetDatum(event_id);
	slot->tts_values[event_attnums[EVENT_TYPE] - 1] = w->event_type;
	slot->tts_values[event_attnums[EVENT_PAYLOAD] - 1] = datumCopy(PointerGetDatum(jb), false, -1);
	slot->tts_values[event_attnums[EVENT_CREATED_AT] - 1] = w->created_at;
	slot->tts_values[event_attnums[EVENT_TXID] - 1] = w->txid;
	if (event_attnums[EVENT_GEN] != InvalidAttrNumber)
		slot->tts_values[event_attnums[EVENT_GEN] - 1] = Int16GetDatum(w->gen);
	for (int c = 0; c < EVENT_NCOLUMNS; c++)
		if (event_attnums[c] != InvalidAttrNumber)
			slot->tts_isnull[event_attnums[c] - 1] = false;
	if (event_attnums[EVENT_ORDERING_KEY] != InvalidAttrNumber)
	{
		slot->tts_isnull[event_attnums[EVENT_ORDERING_KEY] - 1] = key == NULL;
		if (key != NULL)
			slot->tts_values[event_attnums[EVENT_ORDERING_KEY] - 1] =
				datumCopy(ordering_key_datum(key, w->from_watch), false, -1);
	}
	MemoryContextSwitchTo(oldcontext);
	ExecStoreVirtualTuple(slot);

	if (id != NULL)
		memcpy(id, event_id, UUID_LEN);
	w->buffered_bytes += VARSIZE(jb);
	if (++w->nbuffered == EVENT_WRITER_BATCH || w->buffered_bytes >= EVENT_WRITER_BATCH_BYTES)
		flush_events(w);
}

/*
 * Write what is buffered and close the table; the worker is woken when the
 * transaction commits.  Returns the number of events written.
 */
uint64
event_writer_end(EventWriter *w)
{
	flush_events(w);
	ExecCloseIndices(w->rri);
	ExecResetTupleTable(w->estate->es_tupleTable, false);
	FreeExecutorState(w->estate);
	MemoryContextDelete(w->batch_cxt);
	pfree(w->json.data);
	table_close(w->rel, NoLock);
	if (w->written > 0)
		webhook_wake_worker_at_commit_flag();
	return w->written;
}

/* A DestReceiver that hands each row's first column to an EventWriter. */
typedef struct EventReceiver
{
	DestReceiver pub;
	EventWriter *writer;
} EventReceiver;

/* Each row of a payload query (payload, ordering key) becomes an event. */
static bool
receive_payload(TupleTableSlot *slot, DestReceiver *self)
{
	EventReceiver *r = (EventReceiver *) self;

	slot_getsomeattrs(slot, 2);
	event_writer_add(r->writer, slot->tts_values[0], slot->tts_isnull[0],
					 slot->tts_isnull[1] ? NULL : DatumGetTextPP(slot->tts_values[1]), NULL);
	return true;
}

/* The payload query returns jsonb and text; anything else is a bug. */
static void
receiver_startup(DestReceiver *self, int operation, TupleDesc typeinfo)
{
	if (typeinfo->natts != 2 || TupleDescAttr(typeinfo, 0)->atttypid != JSONBOID ||
		TupleDescAttr(typeinfo, 1)->atttypid != TEXTOID)
		elog(ERROR, "a payload query must return a jsonb and a text column");
}

static void
receiver_shutdown(DestReceiver *self)
{
}

static void
receiver_destroy(DestReceiver *self)
{
	pfree(self);
}

/*
 * A receiver for SPI_execute_plan_extended: the watch trigger's payload
 * query writes its rows straight into the events table, without an SPI
 * tuple table or an array of them.
 */
DestReceiver *
event_writer_receiver(EventWriter *w)
{
	EventReceiver *r = palloc0(sizeof(EventReceiver));

	r->pub.receiveSlot = receive_payload;
	r->pub.rStartup = receiver_startup;
	r->pub.rShutdown = receiver_shutdown;
	r->pub.rDestroy = receiver_destroy;
	r->pub.mydest = DestNone;
	r->writer = w;
	return (DestReceiver *) r;
}

/*
 * An event with an idempotency key or a delivery time: one event per key,
 * whoever sends it, also when two transactions race (webhook._enqueue waits
 * for the other's outcome through the unique index).  Rare, so it takes the
 * planned SQL.
 */
static Datum
send_by_sql(text *event_type, Datum payload, text *key, Datum deliver_at, bool deliver_at_null,
			text *ordering_key, bool old_schema)
{
	StringInfoData json;
	Oid			argtypes[5] = {TEXTOID, JSONBOID, TEXTOID, TIMESTAMPTZOID, TEXTOID};
	Datum		values[5] = {PointerGetDatum(event_type), payload, PointerGetDatum(key), deliver_at,
	PointerGetDatum(ordering_key)};
	char		nulls[5] = {' ', ' ', key ? ' ' : 'n', deliver_at_null ? 'n' : ' ', ordering_key ? ' ' : 'n'};
	bool		isnull;
	Datum		id;
	int			ret;

	initStringInfo(&json);
	check_payload_size(&json, DatumGetJsonbP(payload), false);
	if (key && VARSIZE_ANY_EXHDR(key) > 256)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("idempotency key is too long"),
				 errdetail("It has %zu bytes.", VARSIZE_ANY_EXHDR(key)),
				 errhint("An idempotency key has at most 256 bytes; send a hash of a longer key.")));
	SPI_connect();
	if (old_schema)
		ret = SPI_execute_plan(webhook_prepare_once(&keyed_plan_v05, "SELECT webhook._enqueue($1, $2, $3)", 3, argtypes),
							   values, nulls, false, 1);
	else
		ret = SPI_execute_plan(webhook_prepare_once(&keyed_plan, "SELECT webhook._enqueue($1, $2, $3, $4, $5)",
													5, argtypes),
							   values, nulls, false, 1);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not enqueue the event: %s", SPI_result_code_string(ret));
	id = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	id = SPI_datumTransfer(id, false, UUID_LEN);
	SPI_finish();
	return id;
}

/*
 * SQL: webhook.send(event_type, payload, idempotency_key, deliver_at,
 * ordering_key): enqueue one event inside the caller's transaction; it
 * exists, and is delivered, only if that transaction commits, not before
 * deliver_at, and after its ordering key's earlier events on ordered
 * endpoints.  Returns its id (the webhook-id).  A schema before 0.6.0
 * declares three arguments (until ALTER EXTENSION webhook UPDATE).
 */
Datum
webhook_send(PG_FUNCTION_ARGS)
{
	text	   *event_type = PG_ARGISNULL(0) ? NULL : PG_GETARG_TEXT_PP(0);
	bool		has_key = !PG_ARGISNULL(2);
	bool		has_time = PG_NARGS() > 3 && !PG_ARGISNULL(3);
	text	   *ordering_key = PG_NARGS() > 4 && !PG_ARGISNULL(4) ? PG_GETARG_TEXT_PP(4) : NULL;
	EventWriter w;
	pg_uuid_t  *id;

	webhook_check_sendable_event_type(event_type);
	if (PG_ARGISNULL(1))
		raise_null_payload();
	if (ordering_key)
		(void) ordering_key_datum(ordering_key, false);
	if (has_key || has_time)
		PG_RETURN_DATUM(send_by_sql(event_type, PG_GETARG_DATUM(1), has_key ? PG_GETARG_TEXT_PP(2) : NULL,
									has_time ? PG_GETARG_DATUM(3) : (Datum) 0, !has_time,
									ordering_key, PG_NARGS() <= 3));

	if (!event_writer_begin(&w, event_type, false))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("webhook.events is older than the webhook library"),
				 errhint("Run ALTER EXTENSION webhook UPDATE.")));
	id = palloc(UUID_LEN);
	event_writer_add(&w, PG_GETARG_DATUM(1), false, ordering_key, id);
	event_writer_end(&w);
	PG_RETURN_UUID_P(id);
}
