/*
 * watch_payload.c
 *		The payloads of a watch's events, made in C from the statement's
 *		transition tables, for the common watch: no condition, no columns
 *		filter, and an ordering key of at most one column.  They are the
 *		payload query's (watch_trigger.c) to the byte, without its cost: a
 *		one-row INSERT into a watched table paid more for planning and running
 *		that query than for making its event.  Any other watch takes the
 *		query, and so does an UPDATE whose old and new images do not pair up
 *		(see payload_query).
 *
 * The caller runs this as the table's owner, as it runs the query, and it
 * runs as SPI runs the query: after a CommandCounterIncrement, under a
 * fresh snapshot.  The key's cast to text is the expression the parser
 * makes of "value::text", evaluated by the executor, so that a cast
 * function's privileges, strictness and NULL result count as in the query.
 */
#include "postgres.h"

#include "access/sysattr.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "parser/parse_coerce.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/tuplestore.h"

#include "enqueue.h"
#include "watch.h"

/* How one statement's rows become payloads and keys. */
typedef struct RowPayload
{
	const char *operation;		/* INSERT, UPDATE or DELETE */
	char	   *schema;			/* of the watched table (opts->relid) */
	char	   *table;
	FmgrInfo	to_jsonb;		/* to_jsonb(row), told the row's type */
	Datum		exclude;		/* text[] of columns left out, or 0 */
	ExprState  *key;			/* the key column ::text, or NULL: no key */
	ExprContext *key_context;	/* its scan tuple is the row */
	text	   *key_prefix;		/* '<schema>.<table>:' */
} RowPayload;

/*
 * The names of the columns that key a watched row's events: the watch's
 * ordering_key, or else the table's primary key (NIL: none).  rel is the
 * table written to (a Citus shard has its table's names).  The payload
 * query (ordering_key_expr, watch_trigger.c) and this file read the same.
 */
List *
watch_key_columns(Relation rel, const WatchOptions *opts)
{
	List	   *names = NIL;
	Bitmapset  *pk;
	int			k = -1;

	if (opts->ordering_key != (Datum) 0)
		return watch_column_names(opts->relid, opts->ordering_key);
	pk = RelationGetIndexAttrBitmap(rel, INDEX_ATTR_BITMAP_PRIMARY_KEY);
	while ((k = bms_next_member(pk, k)) >= 0)
		names = lappend(names, NameStr(TupleDescAttr(RelationGetDescr(rel),
													 k + FirstLowInvalidHeapAttributeNumber - 1)->attname));
	return names;
}

/*
 * The expression "key::text" over the row, as the query has it, ready to
 * run; false when the query must make the key (several columns, or a name
 * the row does not have).  p->key stays NULL when nothing keys the events.
 */
static bool
key_expression(RowPayload *p, Relation rel, const WatchOptions *opts)
{
	List	   *names = watch_key_columns(rel, opts);
	AttrNumber	attnum;
	Form_pg_attribute att;
	Node	   *cast;

	if (names == NIL)
		return true;
	if (list_length(names) > 1)
		return false;
	attnum = get_attnum(RelationGetRelid(rel), linitial(names));
	if (attnum <= 0)
		return false;
	att = TupleDescAttr(RelationGetDescr(rel), attnum - 1);
	cast = coerce_to_target_type(NULL,
								 (Node *) makeVar(1, attnum, att->atttypid, att->atttypmod, att->attcollation, 0),
								 att->atttypid, TEXTOID, -1, COERCION_EXPLICIT, COERCE_EXPLICIT_CAST, -1);
	if (cast == NULL)
		return false;
	p->key_context = CreateStandaloneExprContext();
	p->key = ExecInitExpr((Expr *) cast, NULL);
	return true;
}

/*
 * Set up a statement's payloads; false when the payload query must make
 * them (a condition, a columns filter, a key of several columns).
 */
static bool
row_payload_init(RowPayload *p, Relation rel, const char *operation, const WatchOptions *opts)
{
	char	   *prefix;

	memset(p, 0, sizeof(*p));
	if (opts->condition != NULL || opts->columns != (Datum) 0 || !key_expression(p, rel, opts))
		return false;
	p->operation = operation;
	p->schema = get_namespace_name(get_rel_namespace(opts->relid));
	p->table = get_rel_name(opts->relid);
	prefix = psprintf("%s:", quote_qualified_identifier(p->schema, p->table));
	p->key_prefix = cstring_to_text(prefix);
	p->exclude = opts->exclude_columns ? watch_column_names_array(opts->relid, opts->exclude_columns) : (Datum) 0;

	/* to_jsonb() reads its argument's type from its call. */
	fmgr_info(F_TO_JSONB, &p->to_jsonb);
	p->to_jsonb.fn_expr = (Node *) makeFuncExpr(F_TO_JSONB, JSONBOID,
												list_make1(makeNullConst(RelationGetForm(rel)->reltype, -1,
																		 InvalidOid)),
												InvalidOid, InvalidOid, COERCE_EXPLICIT_CALL);
	return true;
}

/* The row's key as text ('<schema>.<table>:<value>'), or NULL. */
static text *
row_key(RowPayload *p, TupleTableSlot *slot)
{
	bool		isnull;
	Datum		value;
	text	   *v;
	text	   *key;
	size_t		prefix_len = VARSIZE_ANY_EXHDR(p->key_prefix);

	if (p->key == NULL)
		return NULL;
	ResetExprContext(p->key_context);
	p->key_context->ecxt_scantuple = slot;
	value = ExecEvalExprSwitchContext(p->key, p->key_context, &isnull);
	if (isnull)
		return NULL;
	v = DatumGetTextPP(value);
	key = palloc(VARHDRSZ + prefix_len + VARSIZE_ANY_EXHDR(v));
	SET_VARSIZE(key, VARHDRSZ + prefix_len + VARSIZE_ANY_EXHDR(v));
	memcpy(VARDATA(key), VARDATA_ANY(p->key_prefix), prefix_len);
	memcpy(VARDATA(key) + prefix_len, VARDATA_ANY(v), VARSIZE_ANY_EXHDR(v));
	return key;
}

/* A string or a nested jsonb as a value to push into an object. */
static void
push_pair(JsonbParseState **state, const char *key, const char *string, Jsonb *nested)
{
	JsonbValue	k;
	JsonbValue	v;

	k.type = jbvString;
	k.val.string.val = (char *) key;
	k.val.string.len = strlen(key);
	pushJsonbValue(state, WJB_KEY, &k);
	if (string != NULL)
	{
		v.type = jbvString;
		v.val.string.val = (char *) string;
		v.val.string.len = strlen(string);
	}
	else if (nested != NULL)
	{
		v.type = jbvBinary;
		v.val.binary.data = &nested->root;
		v.val.binary.len = VARSIZE(nested) - VARHDRSZ;
	}
	else
		v.type = jbvNull;
	pushJsonbValue(state, WJB_VALUE, &v);
}

/* A row's image: to_jsonb(row) less the excluded columns. */
static Jsonb *
row_image(RowPayload *p, TupleTableSlot *slot)
{
	Datum		image = FunctionCall1(&p->to_jsonb, ExecFetchSlotHeapTupleDatum(slot));

	if (p->exclude != (Datum) 0)
		image = DirectFunctionCall2(jsonb_delete_array, image, p->exclude);
	return DatumGetJsonbP(image);
}

/*
 * One event's payload, as jsonb_build_object('operation', ..., 'schema',
 * ..., 'table', ..., 'record', ..., 'old_record', ...) makes it: the new
 * row's image under record, the old one's under old_record (NULL: none).
 */
static Datum
event_payload(RowPayload *p, Jsonb *record, Jsonb *old_record)
{
	JsonbParseState *state = NULL;
	JsonbValue *res;

	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	push_pair(&state, "operation", p->operation, NULL);
	push_pair(&state, "schema", p->schema, NULL);
	push_pair(&state, "table", p->table, NULL);
	push_pair(&state, "record", NULL, record);
	push_pair(&state, "old_record", NULL, old_record);
	res = pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	return JsonbPGetDatum(JsonbValueToJsonb(res));
}

/* A transition table, read from its start through a read pointer of its own. */
static TupleTableSlot *
start_reading(Tuplestorestate *rows, Relation rel)
{
	/* Other triggers of the statement may read the same table. */
	tuplestore_select_read_pointer(rows, tuplestore_alloc_read_pointer(rows, EXEC_FLAG_REWIND));
	tuplestore_rescan(rows);
	return MakeSingleTupleTableSlot(RelationGetDescr(rel), &TTSOpsMinimalTuple);
}

/* Say which watch an error of its payloads came from, as the query's do. */
static void
payload_error_callback(void *arg)
{
	errcontext("webhook watch of table %s", (const char *) arg);
}

/*
 * Write one event per changed row into w: of an INSERT, its new row; of a
 * DELETE, its old one; of an UPDATE, each pair of old and new rows, taken
 * in the order the tables hold them, that changed something the payload
 * shows (a pair whose images are equal emits nothing, as in the query).
 * Each row's values are freed before the next.
 */
static void
write_events(RowPayload *p, Tuplestorestate *new_rows, Tuplestorestate *old_rows, Relation rel,
			 EventWriter *w)
{
	TupleTableSlot *new_slot = new_rows ? start_reading(new_rows, rel) : NULL;
	TupleTableSlot *old_slot = old_rows ? start_reading(old_rows, rel) : NULL;
	MemoryContext per_row = AllocSetContextCreate(CurrentMemoryContext, "webhook watch row",
												  ALLOCSET_DEFAULT_SIZES);

	while ((new_slot == NULL || tuplestore_gettupleslot(new_rows, true, false, new_slot)) &&
		   (old_slot == NULL || tuplestore_gettupleslot(old_rows, true, false, old_slot)))
	{
		MemoryContext oldcontext = MemoryContextSwitchTo(per_row);
		Jsonb	   *record = new_slot ? row_image(p, new_slot) : NULL;
		Jsonb	   *old_record = old_slot ? row_image(p, old_slot) : NULL;

		CHECK_FOR_INTERRUPTS();
		if (record == NULL || old_record == NULL ||
			!DatumGetBool(DirectFunctionCall2(jsonb_eq, JsonbPGetDatum(record), JsonbPGetDatum(old_record))))
		{
			Datum		payload = event_payload(p, record, old_record);
			text	   *key = row_key(p, new_slot ? new_slot : old_slot);

			event_writer_add(w, payload, false, key, NULL);
		}
		MemoryContextSwitchTo(oldcontext);
		MemoryContextReset(per_row);
	}
	MemoryContextDelete(per_row);
	if (new_slot)
		ExecDropSingleTupleTableSlot(new_slot);
	if (old_slot)
		ExecDropSingleTupleTableSlot(old_slot);
}

/*
 * Write the events of a statement into w, straight from its transition
 * tables; returns false, having written nothing, when the payload query
 * must make them (row_payload_init, or an UPDATE whose tables are not of
 * equal length: its pairs cannot be told).  With no condition, every
 * changed row is an event, as the query selects them all.  It runs as SPI
 * would run the query: after the statement's changes, under a new snapshot.
 */
bool
watch_payload_write(struct TriggerData *trigdata, const char *operation, const WatchOptions *opts,
					struct EventWriter *w)
{
	Tuplestorestate *new_rows = strcmp(operation, "DELETE") != 0 ? trigdata->tg_newtable : NULL;
	Tuplestorestate *old_rows = strcmp(operation, "INSERT") != 0 ? trigdata->tg_oldtable : NULL;
	RowPayload	p;
	ErrorContextCallback errcallback;

	if ((new_rows == NULL && old_rows == NULL) ||
		(strcmp(operation, "UPDATE") == 0 &&
		 (new_rows == NULL || old_rows == NULL ||
		  tuplestore_tuple_count(new_rows) != tuplestore_tuple_count(old_rows))) ||
		!row_payload_init(&p, trigdata->tg_relation, operation, opts))
		return false;
	elog(DEBUG2, "webhook watch of table %s: payloads made without the payload query",
		 watch_table_name(opts->relid));

	errcallback.callback = payload_error_callback;
	errcallback.arg = watch_table_name(opts->relid);
	errcallback.previous = error_context_stack;
	error_context_stack = &errcallback;
	CommandCounterIncrement();
	PushActiveSnapshot(GetTransactionSnapshot());
	write_events(&p, new_rows, old_rows, trigdata->tg_relation, w);
	PopActiveSnapshot();
	error_context_stack = errcallback.previous;
	if (p.key_context)
		FreeExprContext(p.key_context, true);
	return true;
}
