/*
 * watch_lookup.c
 *		A watched table's watch, as its trigger reads it at every statement:
 *		from webhook.table_watches once, then from this backend's cache for
 *		as long as that row is the one the statement sees.
 *
 * Reading the row through SPI cost a one-row INSERT into a watched table
 * about as much as the rest of its trigger.  The cache keeps, per table and
 * operation, what the row said and where it was (its ctid and xmin).  Each
 * lookup fetches the row version at that ctid under the statement's
 * snapshot: still visible with the same xmin means unchanged; updated,
 * deleted, moved or its table gone means read again.  No invalidation
 * message is needed, so rows changed by any path (watch(), a restore, an
 * upgrade script, the cluster sync) count from the next statement on.
 * Watch rows of a schema before 0.2.0 (src/compat.c) are read every time.
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/relation.h"
#include "catalog/pg_am_d.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "storage/bufmgr.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "compat.h"
#include "spi_util.h"
#include "watch.h"
#include "watch_lookup.h"

typedef struct WatchKey
{
	Oid			relid;
	char		operation[NAMEDATALEN];
} WatchKey;

/* What a watch row said, and the row version it was read from. */
typedef struct CachedWatch
{
	WatchKey	key;
	Oid			watches_relid;	/* webhook.table_watches */
	Oid			watches_file;	/* its relfilenode: a rewrite moves rows */
	ItemPointerData tid;
	TransactionId xmin;
	MemoryContext cxt;			/* holds the values below */
	char	   *event_prefix;
	bool		wants_operation;
	Datum		columns;
	char	   *condition;
	Datum		exclude_columns;
	Datum		ordering_key;
} CachedWatch;

static HTAB *watches = NULL;
static SPIPlanPtr options_plan = NULL;

/* A copy of an int2[] (or 0) in cxt. */
static Datum
copy_array(Datum value, MemoryContext cxt)
{
	MemoryContext old;
	Datum		copy;

	if (value == (Datum) 0)
		return (Datum) 0;
	old = MemoryContextSwitchTo(cxt);
	copy = datumCopy(value, false, -1);
	MemoryContextSwitchTo(old);
	return copy;
}

/* A copy of a string (or NULL) in cxt. */
static char *
copy_string(const char *value, MemoryContext cxt)
{
	return value ? MemoryContextStrdup(cxt, value) : NULL;
}

/* Hand the cached values to the caller, in its memory context. */
static void
options_from_cache(const CachedWatch *c, WatchOptions *opts)
{
	opts->relid = c->key.relid;
	opts->event_prefix = copy_string(c->event_prefix, CurrentMemoryContext);
	opts->wants_operation = c->wants_operation;
	opts->columns = copy_array(c->columns, CurrentMemoryContext);
	opts->condition = copy_string(c->condition, CurrentMemoryContext);
	opts->exclude_columns = copy_array(c->exclude_columns, CurrentMemoryContext);
	opts->ordering_key = copy_array(c->ordering_key, CurrentMemoryContext);
}

/*
 * Is the row a cache entry was read from still the version the current
 * snapshot sees?  Within one relfilenode a (ctid, xmin) pair names one row
 * version; a rewrite (VACUUM FULL, CLUSTER) keeps the xmins but moves rows,
 * so another file means read again.  Its block may be gone (the table was
 * vacuumed shorter): then it is not current either, and nothing is read
 * past the table's end.  Only heap tables are fetched from.
 */
static bool
still_current(const CachedWatch *c)
{
	Relation	rel = try_relation_open(c->watches_relid, AccessShareLock);
	Snapshot	snapshot = ActiveSnapshotSet() ? GetActiveSnapshot() : GetTransactionSnapshot();
	HeapTupleData tuple;
	Buffer		buffer;
	bool		same = false;

	if (rel == NULL)
		return false;
	tuple.t_self = c->tid;
	if (rel->rd_rel->relam == HEAP_TABLE_AM_OID && rel->rd_node.relNode == c->watches_file &&
		ItemPointerGetBlockNumber(&c->tid) < RelationGetNumberOfBlocks(rel) &&
		heap_fetch(rel, snapshot, &tuple, &buffer, false))
	{
		same = TransactionIdEquals(HeapTupleHeaderGetRawXmin(tuple.t_data), c->xmin);
		ReleaseBuffer(buffer);
	}
	relation_close(rel, AccessShareLock);
	return same;
}

/* The relfilenode of webhook.table_watches now (InvalidOid: it is gone). */
static Oid
watches_file(Oid watches_relid)
{
	Relation	rel = try_relation_open(watches_relid, AccessShareLock);
	Oid			file;

	if (rel == NULL)
		return InvalidOid;
	file = rel->rd_node.relNode;
	relation_close(rel, AccessShareLock);
	return file;
}

/* Forget a table's cached watch for one operation. */
static void
forget(const WatchKey *key)
{
	CachedWatch *c;

	if (watches == NULL)
		return;
	c = hash_search(watches, key, HASH_FIND, NULL);
	if (c == NULL)
		return;
	MemoryContextDelete(c->cxt);
	hash_search(watches, key, HASH_REMOVE, NULL);
}

/*
 * Keep what a watch row said, replacing an older entry of the same key.
 * Everything is copied before the entry is made, so that running out of
 * memory leaves no half-filled entry behind.
 */
static void
remember(const WatchKey *key, const WatchOptions *opts, Oid watches_relid, ItemPointer tid,
		 TransactionId xmin)
{
	CachedWatch fresh;
	CachedWatch *c;

	if (watches == NULL)
	{
		HASHCTL		ctl;

		memset(&ctl, 0, sizeof(ctl));
		ctl.keysize = sizeof(WatchKey);
		ctl.entrysize = sizeof(CachedWatch);
		watches = hash_create("webhook watches", 64, &ctl, HASH_ELEM | HASH_BLOBS);
	}
	forget(key);
	fresh.key = *key;
	fresh.watches_relid = watches_relid;
	fresh.watches_file = watches_file(watches_relid);
	fresh.tid = *tid;
	fresh.xmin = xmin;
	fresh.cxt = AllocSetContextCreate(TopMemoryContext, "webhook watch", ALLOCSET_SMALL_SIZES);
	fresh.event_prefix = copy_string(opts->event_prefix, fresh.cxt);
	fresh.wants_operation = opts->wants_operation;
	fresh.columns = copy_array(opts->columns, fresh.cxt);
	fresh.condition = copy_string(opts->condition, fresh.cxt);
	fresh.exclude_columns = copy_array(opts->exclude_columns, fresh.cxt);
	fresh.ordering_key = copy_array(opts->ordering_key, fresh.cxt);
	c = hash_search(watches, key, HASH_ENTER, NULL);
	*c = fresh;
}

/*
 * Read a table's watch row through SPI (connected by the caller), and
 * cache it unless it is one of a schema before 0.2.0, which src/compat.c
 * reads; false when the table has none.
 */
static bool
read_watch_row(const WatchKey *key, WatchOptions *opts)
{
	Oid			argtypes[2] = {OIDOID, TEXTOID};
	Datum		values[2] = {ObjectIdGetDatum(key->relid), CStringGetTextDatum(key->operation)};
	int			ret;
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull;
	Datum		d;

	ret = SPI_execute_plan(webhook_prepare_once(&options_plan,
												"SELECT event_prefix, $2 OPERATOR(pg_catalog.=) ANY (operations), columns, condition, exclude_columns, "
												WATCH_ORDERING_KEY_SQL ", w.tableoid, w.ctid, w.xmin"
												"  FROM webhook.table_watches w WHERE table_oid OPERATOR(pg_catalog.=) $1::pg_catalog.regclass",
												2, argtypes),
						   values, NULL, true, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read the watch options: %s", SPI_result_code_string(ret));
	if (SPI_processed == 0)
		return false;

	opts->relid = key->relid;
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	opts->event_prefix = SPI_getvalue(tup, desc, 1);
	opts->wants_operation = DatumGetBool(SPI_getbinval(tup, desc, 2, &isnull));

	/*
	 * Compatibility: until ALTER EXTENSION webhook UPDATE runs, a 0.1.0
	 * schema keeps columns as text[] of names and the condition as SQL text.
	 * src/compat.c reads them into what a watch keeps now (column numbers, a
	 * parsed condition), so the text never reaches stringToNode.
	 */
	opts->ordering_key = (Datum) 0;
	if (SPI_gettypeid(desc, 3) == TEXTARRAYOID)
	{
		webhook_compat_watch_row(key->relid, tup, desc, &opts->columns, &opts->condition,
								 &opts->exclude_columns);
		return true;
	}
	d = SPI_getbinval(tup, desc, 3, &isnull);
	opts->columns = isnull ? (Datum) 0 : SPI_datumTransfer(d, false, -1);
	opts->condition = SPI_getvalue(tup, desc, 4);
	d = SPI_getbinval(tup, desc, 5, &isnull);
	opts->exclude_columns = isnull ? (Datum) 0 : SPI_datumTransfer(d, false, -1);
	d = SPI_getbinval(tup, desc, 6, &isnull);
	opts->ordering_key = isnull ? (Datum) 0 : SPI_datumTransfer(d, false, -1);
	remember(key, opts, DatumGetObjectId(SPI_getbinval(tup, desc, 7, &isnull)),
			 (ItemPointer) DatumGetPointer(SPI_getbinval(tup, desc, 8, &isnull)),
			 DatumGetTransactionId(SPI_getbinval(tup, desc, 9, &isnull)));
	return true;
}

/*
 * The watch of a table for one operation ("insert", "update", "delete"), in
 * the caller's memory; false when the table has none (it was unwatched).
 * Runs as the extension's owner, with SPI connected and a snapshot active.
 */
bool
watch_lookup(Oid relid, const char *operation, WatchOptions *opts)
{
	WatchKey	key;
	CachedWatch *c;

	memset(&key, 0, sizeof(key));
	key.relid = relid;
	strlcpy(key.operation, operation, sizeof(key.operation));
	c = watches ? hash_search(watches, &key, HASH_FIND, NULL) : NULL;
	if (c != NULL && still_current(c))
	{
		options_from_cache(c, opts);
		return true;
	}
	forget(&key);
	return read_watch_row(&key, opts);
}
