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
 * The caller runs this as the table's owner, as it runs the query: the
 * column types' output functions run as the owner.
 */
#include "postgres.h"

#include "access/sysattr.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "nodes/makefuncs.h"
#include "parser/parse_coerce.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
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
	AttrNumber	key_attnum;		/* the key's column in the row, or 0: none */
	CoercionPathType key_path;	/* how the key's value becomes text */
	FmgrInfo	key_fn;			/* its cast function or output function */
	Oid			key_collation;
	char	   *key_prefix;		/* '<schema>.<table>:' */
} RowPayload;

/*
 * The column of the row that keys its events, or 0 when none does; -1 when
 * the key has several columns (the query makes those).  The key is the
 * watch's ordering_key, or else the table's primary key, as
 * ordering_key_expr (watch_trigger.c) reads it.
 */
static AttrNumber
key_column(Relation rel, const WatchOptions *opts)
{
	List	   *names = NIL;

	if (opts->ordering_key != (Datum) 0)
		names = watch_column_names(opts->relid, opts->ordering_key);
	else
	{
		Bitmapset  *pk = RelationGetIndexAttrBitmap(rel, INDEX_ATTR_BITMAP_PRIMARY_KEY);
		int			k = -1;

		while ((k = bms_next_member(pk, k)) >= 0)
			names = lappend(names, NameStr(TupleDescAttr(RelationGetDescr(rel),
														 k + FirstLowInvalidHeapAttributeNumber - 1)->attname));
	}
	if (names == NIL)
		return 0;
	if (list_length(names) > 1)
		return -1;
	return get_attnum(RelationGetRelid(rel), linitial(names));
}

/*
 * How a key column's value becomes text, as "value::text" makes it: a cast
 * function of one argument, the type's output function, or the value itself
 * (a type binary-coercible to text).  False for any other cast.
 */
static bool
key_cast(RowPayload *p, Oid type, Oid collation)
{
	Oid			base = getBaseType(type);
	Oid			func = InvalidOid;

	p->key_collation = collation;
	p->key_path = find_coercion_pathway(TEXTOID, base, COERCION_EXPLICIT, &func);
	switch (p->key_path)
	{
		case COERCION_PATH_RELABELTYPE:
			return true;
		case COERCION_PATH_FUNC:
			if (get_func_nargs(func) != 1)
				return false;
			fmgr_info(func, &p->key_fn);
			return true;
		case COERCION_PATH_COERCEVIAIO:
			{
				Oid			output;
				bool		varlena;

				getTypeOutputInfo(base, &output, &varlena);
				fmgr_info(output, &p->key_fn);
				return true;
			}
		default:
			return false;
	}
}

/*
 * Set up a statement's payloads; false when the payload query must make
 * them (a condition, a columns filter, a key of several columns, a key
 * type whose cast to text this does not make).
 */
static bool
row_payload_init(RowPayload *p, Relation rel, const char *operation, const WatchOptions *opts)
{
	AttrNumber	key;
	Form_pg_attribute att;

	if (opts->condition != NULL || opts->columns != (Datum) 0)
		return false;
	key = key_column(rel, opts);
	if (key < 0)
		return false;
	p->key_attnum = key;
	if (key > 0)
	{
		att = TupleDescAttr(RelationGetDescr(rel), key - 1);
		if (!key_cast(p, att->atttypid, att->attcollation))
			return false;
	}
	p->operation = operation;
	p->schema = get_namespace_name(get_rel_namespace(opts->relid));
	p->table = get_rel_name(opts->relid);
	p->key_prefix = psprintf("%s:", quote_qualified_identifier(p->schema, p->table));
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
	char	   *s;

	if (p->key_attnum == 0)
		return NULL;
	value = slot_getattr(slot, p->key_attnum, &isnull);
	if (isnull)
		return NULL;
	switch (p->key_path)
	{
		case COERCION_PATH_RELABELTYPE:
			s = TextDatumGetCString(value);
			break;
		case COERCION_PATH_FUNC:
			s = TextDatumGetCString(FunctionCall1Coll(&p->key_fn, p->key_collation, value));
			break;
		default:
			s = OutputFunctionCall(&p->key_fn, value);
			break;
	}
	return cstring_to_text(psprintf("%s%s", p->key_prefix, s));
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

		if (record == NULL || old_record == NULL ||
			!DatumGetBool(DirectFunctionCall2(jsonb_eq, JsonbPGetDatum(record), JsonbPGetDatum(old_record))))
			event_writer_add(w, event_payload(p, record, old_record), false,
							 row_key(p, new_slot ? new_slot : old_slot), NULL);
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
 * changed row is an event, as the query selects them all.
 */
bool
watch_payload_write(struct TriggerData *trigdata, const char *operation, const WatchOptions *opts,
					struct EventWriter *w)
{
	Tuplestorestate *new_rows = strcmp(operation, "DELETE") != 0 ? trigdata->tg_newtable : NULL;
	Tuplestorestate *old_rows = strcmp(operation, "INSERT") != 0 ? trigdata->tg_oldtable : NULL;
	RowPayload	p;

	if ((new_rows == NULL && old_rows == NULL) ||
		(strcmp(operation, "UPDATE") == 0 &&
		 (new_rows == NULL || old_rows == NULL ||
		  tuplestore_tuple_count(new_rows) != tuplestore_tuple_count(old_rows))) ||
		!row_payload_init(&p, trigdata->tg_relation, operation, opts))
		return false;
	elog(DEBUG2, "webhook watch of table %s: payloads made without the payload query",
		 watch_table_name(opts->relid));
	write_events(&p, new_rows, old_rows, trigdata->tg_relation, w);
	return true;
}
