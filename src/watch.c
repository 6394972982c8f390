/*
 * watch.c
 *		The statement-level trigger behind webhook.watch(): turns the rows a
 *		statement changed into events, set-based, whatever their number.
 *
 * Privileges follow the foreign-key triggers' model: the watch's options are
 * read, and the events written, as the owner of the extension's tables; the
 * changed rows are selected, and the user's condition evaluated, as the
 * owner of the watched table, who wrote that condition.  The role running
 * the INSERT/UPDATE/DELETE needs no rights on the webhook schema.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "webhook.h"

PG_FUNCTION_INFO_V1(webhook_watch_trigger);

/* The options of one watch, as read from webhook.table_watches. */
typedef struct WatchOptions
{
	char	   *event_prefix;
	bool		wants_operation;
	Datum		columns;		/* text[] or 0 */
	char	   *condition;		/* or NULL */
	Datum		exclude_columns;	/* text[] or 0 */
} WatchOptions;

/*
 * Saved plans, so that a one-row INSERT does not plan three statements: the
 * options lookup and the enqueue call once per backend, the payload query
 * once per table, operation and option text (SPI revalidates them on DDL).
 */
typedef struct PayloadPlan
{
	char		key[NAMEDATALEN * 2];	/* "relid/operation" */
	char	   *sql;			/* the text the plan was made from */
	SPIPlanPtr	plan;
} PayloadPlan;

static SPIPlanPtr options_plan = NULL;
static SPIPlanPtr enqueue_plan = NULL;
static HTAB *payload_plans = NULL;

/* The saved plan of a payload query, made anew when the query text changed. */
static SPIPlanPtr
payload_plan(Oid relid, const char *operation, const char *sql, int nargs, Oid *argtypes)
{
	char		key[NAMEDATALEN * 2];
	bool		found;
	PayloadPlan *entry;

	if (payload_plans == NULL)
	{
		HASHCTL		ctl;

		memset(&ctl, 0, sizeof(ctl));
		ctl.keysize = sizeof(key);
		ctl.entrysize = sizeof(PayloadPlan);
		payload_plans = hash_create("webhook watch plans", 64, &ctl, HASH_ELEM | HASH_STRINGS);
	}
	memset(key, 0, sizeof(key));
	snprintf(key, sizeof(key), "%u/%s", relid, operation);
	entry = hash_search(payload_plans, key, HASH_ENTER, &found);
	if (found && strcmp(entry->sql, sql) != 0)
	{
		SPI_freeplan(entry->plan);
		pfree(entry->sql);
		found = false;
	}
	if (!found)
	{
		entry->sql = NULL;
		entry->plan = NULL;
		entry->plan = webhook_prepare_once(&entry->plan, sql, nargs, argtypes);
		entry->sql = MemoryContextStrdup(TopMemoryContext, sql);
	}
	return entry->plan;
}

/* The owner of a relation, to run SQL with that role's rights. */
static Oid
relation_owner(Oid relid)
{
	HeapTuple	tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	Oid			owner;

	if (!HeapTupleIsValid(tuple))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	owner = ((Form_pg_class) GETSTRUCT(tuple))->relowner;
	ReleaseSysCache(tuple);
	return owner;
}

/* Read the watch of a table; false when it has none (watch was removed). */
static bool
read_watch_options(Oid relid, const char *operation, WatchOptions *opts)
{
	Oid			argtypes[2] = {OIDOID, TEXTOID};
	Datum		values[2] = {ObjectIdGetDatum(relid), CStringGetTextDatum(operation)};
	int			ret;
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull;
	Datum		d;

	ret = SPI_execute_plan(webhook_prepare_once(&options_plan,
									 "SELECT event_prefix, $2 OPERATOR(pg_catalog.=) ANY (operations), columns, condition, exclude_columns"
									 "  FROM webhook.table_watches WHERE table_oid = $1::pg_catalog.regclass",
									 2, argtypes),
						   values, NULL, true, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read the watch options: %s", SPI_result_code_string(ret));
	if (SPI_processed == 0)
		return false;

	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	opts->event_prefix = SPI_getvalue(tup, desc, 1);
	opts->wants_operation = DatumGetBool(SPI_getbinval(tup, desc, 2, &isnull));
	d = SPI_getbinval(tup, desc, 3, &isnull);
	opts->columns = isnull ? (Datum) 0 : SPI_datumTransfer(d, false, -1);
	opts->condition = SPI_getvalue(tup, desc, 4);
	d = SPI_getbinval(tup, desc, 5, &isnull);
	opts->exclude_columns = isnull ? (Datum) 0 : SPI_datumTransfer(d, false, -1);
	return true;
}

/*
 * The SELECT that makes one payload per changed row.  NEW and OLD name the
 * row images; for INSERT, OLD is a row of NULLs (and NEW for DELETE), so that
 * a condition mentioning both still runs.  UPDATE pairs old and new images by
 * their position in the transition tables, which PostgreSQL fills together,
 * one pair per updated row.
 */
static char *
payload_query(Relation rel, const char *operation, const WatchOptions *opts)
{
	StringInfoData q;
	char	   *qualified = quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
													   RelationGetRelationName(rel));
	const char *excl = "'{}'::pg_catalog.text[]";
	bool		is_update = strcmp(operation, "UPDATE") == 0;

	initStringInfo(&q);
	if (opts->exclude_columns)
		excl = "$1::pg_catalog.text[]";

	appendStringInfo(&q,
					 "SELECT pg_catalog.jsonb_build_object("
					 "'operation', %s, 'schema', %s, 'table', %s, "
					 "'record', %s, 'old_record', %s) FROM ",
					 quote_literal_cstr(operation),
					 quote_literal_cstr(get_namespace_name(RelationGetNamespace(rel))),
					 quote_literal_cstr(RelationGetRelationName(rel)),
					 strcmp(operation, "DELETE") == 0 ? "NULL::pg_catalog.jsonb" :
					 psprintf("(pg_catalog.to_jsonb(new) OPERATOR(pg_catalog.-) %s%s)", excl,
							  is_update ? " OPERATOR(pg_catalog.-) '__webhook_row'::pg_catalog.text" : ""),
					 strcmp(operation, "INSERT") == 0 ? "NULL::pg_catalog.jsonb" :
					 psprintf("(pg_catalog.to_jsonb(old) OPERATOR(pg_catalog.-) %s%s)", excl,
							  is_update ? " OPERATOR(pg_catalog.-) '__webhook_row'::pg_catalog.text" : ""));

	if (strcmp(operation, "INSERT") == 0)
		appendStringInfo(&q, "webhook_new AS new CROSS JOIN (SELECT (NULL::%s).*) AS old", qualified);
	else if (strcmp(operation, "DELETE") == 0)
		appendStringInfo(&q, "webhook_old AS old CROSS JOIN (SELECT (NULL::%s).*) AS new", qualified);
	else
		appendStringInfoString(&q,
							   "(SELECT pg_catalog.row_number() OVER () AS __webhook_row, n.* FROM webhook_new n) AS new "
							   "JOIN (SELECT pg_catalog.row_number() OVER () AS __webhook_row, o.* FROM webhook_old o) AS old "
							   "USING (__webhook_row)");

	appendStringInfoString(&q, " WHERE true");
	if (is_update)
	{
		/* An UPDATE that changed nothing visible emits nothing. */
		appendStringInfo(&q,
						 " AND (pg_catalog.to_jsonb(new) OPERATOR(pg_catalog.-) %s)"
						 " IS DISTINCT FROM (pg_catalog.to_jsonb(old) OPERATOR(pg_catalog.-) %s)",
						 excl, excl);
		if (opts->columns)
		{
			ArrayType  *arr = DatumGetArrayTypeP(opts->columns);
			Datum	   *elems;
			int			n;

			deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, NULL, &n);
			appendStringInfoString(&q, " AND (false");
			for (int i = 0; i < n; i++)
			{
				const char *col = quote_identifier(TextDatumGetCString(elems[i]));

				/* jsonb equality works for every column type, json and point too. */
				appendStringInfo(&q, " OR pg_catalog.to_jsonb(new.%s) IS DISTINCT FROM pg_catalog.to_jsonb(old.%s)",
								 col, col);
			}
			appendStringInfoChar(&q, ')');
		}
	}
	if (opts->condition)
		appendStringInfo(&q, " AND (%s)", opts->condition);
	return q.data;
}

/*
 * Trigger entry point: AFTER INSERT/UPDATE/DELETE FOR EACH STATEMENT with
 * transition tables webhook_new / webhook_old.
 */
Datum
webhook_watch_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	Relation	rel;
	const char *operation;
	const char *suffix;
	Oid			save_userid;
	int			save_sec_context;
	Oid			webhook_owner;
	WatchOptions opts;
	int			ret;
	uint64		nrows;
	Datum	   *payloads;
	int			save_nestlevel;

	if (!CALLED_AS_TRIGGER(fcinfo) ||
		!TRIGGER_FIRED_AFTER(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_STATEMENT(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("webhook._watch_trigger() must be an AFTER ... FOR EACH STATEMENT trigger"),
				 errhint("Use webhook.watch() to install it.")));

	rel = trigdata->tg_relation;
	if (TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
		operation = "INSERT", suffix = "created";
	else if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
		operation = "UPDATE", suffix = "updated";
	else if (TRIGGER_FIRED_BY_DELETE(trigdata->tg_event))
		operation = "DELETE", suffix = "deleted";
	else
		return PointerGetDatum(NULL);

	/* Nothing changed (e.g. an UPDATE matching no row): no work at all. */
	if ((trigdata->tg_newtable == NULL || tuplestore_tuple_count(trigdata->tg_newtable) == 0) &&
		(trigdata->tg_oldtable == NULL || tuplestore_tuple_count(trigdata->tg_oldtable) == 0))
		return PointerGetDatum(NULL);

	webhook_owner = relation_owner(get_relname_relid("table_watches",
													 get_namespace_oid("webhook", false)));
	GetUserIdAndSecContext(&save_userid, &save_sec_context);

	/*
	 * Everything below resolves names in pg_catalog only, whatever the
	 * writer's search_path: nobody's planted function or operator runs.
	 */
	save_nestlevel = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);

	SPI_connect();
	SPI_register_trigger_data(trigdata);

	SetUserIdAndSecContext(webhook_owner, save_sec_context | SECURITY_LOCAL_USERID_CHANGE);
	if (!read_watch_options(RelationGetRelid(rel), suffix[0] == 'c' ? "insert" :
							suffix[0] == 'u' ? "update" : "delete", &opts) ||
		!opts.wants_operation)
	{
		SetUserIdAndSecContext(save_userid, save_sec_context);
		SPI_finish();
		AtEOXact_GUC(true, save_nestlevel);
		return PointerGetDatum(NULL);
	}

	/* Select the payloads as the table's owner, with the owner's condition. */
	SetUserIdAndSecContext(relation_owner(RelationGetRelid(rel)),
						   save_sec_context | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	{
		char	   *sql = payload_query(rel, operation, &opts);
		Oid			argtypes[1] = {TEXTARRAYOID};
		Datum		values[1] = {opts.exclude_columns};

		int			nargs = opts.exclude_columns ? 1 : 0;

		ret = SPI_execute_plan(payload_plan(RelationGetRelid(rel), operation, sql, nargs, argtypes),
							   values, NULL, false, 0);
		if (ret != SPI_OK_SELECT)
			elog(ERROR, "could not select the changed rows: %s", SPI_result_code_string(ret));
	}
	nrows = SPI_processed;
	if (nrows > 0)
	{
		SPITupleTable *tuptable = SPI_tuptable;
		Oid			argtypes[2] = {TEXTOID, JSONBARRAYOID};
		Datum		values[2];
		int			dims[1];
		int			lbs[1] = {1};

		if (nrows > (uint64) (MaxAllocSize / sizeof(Datum)))
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("too many rows changed in one statement for webhook events")));
		payloads = palloc(sizeof(Datum) * nrows);
		for (uint64 i = 0; i < nrows; i++)
		{
			bool		isnull;

			payloads[i] = SPI_getbinval(tuptable->vals[i], tuptable->tupdesc, 1, &isnull);
		}
		dims[0] = (int) nrows;
		values[0] = CStringGetTextDatum(psprintf("%s.%s", opts.event_prefix, suffix));
		values[1] = PointerGetDatum(construct_md_array(payloads, NULL, 1, dims, lbs,
													   JSONBOID, -1, false, TYPALIGN_INT));

		/* Write the events as the extension's owner. */
		SetUserIdAndSecContext(webhook_owner, save_sec_context | SECURITY_LOCAL_USERID_CHANGE);
		ret = SPI_execute_plan(webhook_prepare_once(&enqueue_plan, "SELECT webhook._enqueue_many($1, $2)", 2, argtypes),
							   values, NULL, false, 1);
		if (ret != SPI_OK_SELECT)
			elog(ERROR, "could not enqueue the events: %s", SPI_result_code_string(ret));
	}

	SetUserIdAndSecContext(save_userid, save_sec_context);
	SPI_finish();
	AtEOXact_GUC(true, save_nestlevel);
	return PointerGetDatum(NULL);
}

PG_FUNCTION_INFO_V1(webhook_expression_problem);

/*
 * SQL: webhook._expression_problem(text).  A watch condition is pasted into
 * the trigger's query inside parentheses; refuse text that could close them
 * early, end the statement or hide the rest in a comment.  NULL when fine.
 */
Datum
webhook_expression_problem(PG_FUNCTION_ARGS)
{
	char	   *expr = text_to_cstring(PG_GETARG_TEXT_PP(0));
	int			depth = 0;
	const char *problem = NULL;

	for (const char *p = expr; *p && problem == NULL; p++)
	{
		if (*p == '\'' || *p == '"')
		{
			char		quote = *p;

			/* Skip a string or quoted identifier; doubled quotes stay inside. */
			for (p++; *p && !(*p == quote && p[1] != quote); p++)
				if (*p == quote)
					p++;
			if (*p == '\0')
				problem = "it has an unterminated quote";
		}
		else if (*p == '$')
			problem = "dollar quoting is not allowed in a condition";
		else if (*p == ';')
			problem = "it contains a semicolon";
		else if ((p[0] == '-' && p[1] == '-') || (p[0] == '/' && p[1] == '*'))
			problem = "comments are not allowed in a condition";
		else if (*p == '(')
			depth++;
		else if (*p == ')' && --depth < 0)
			problem = "it closes a parenthesis it did not open";
	}
	if (problem == NULL && depth != 0)
		problem = "its parentheses are not balanced";
	if (problem == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(problem));
}
