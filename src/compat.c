/*
 * compat.c
 *		What the library keeps for a schema of an older version, between the
 *		swap of the package (and a restart) and ALTER EXTENSION webhook
 *		UPDATE: the C entry points that only older install scripts name, the
 *		release's check of sealed secrets, and the reading of watches as
 *		version 0.1.0 kept them.  Each delegates to the current rule;
 *		nothing here is a rule of its own.
 *
 * sql/webhook--0.1.0--0.2.0.sql removes every user of this file from the
 * schema; the file goes when no supported version names its functions.
 */
#include "postgres.h"

#include "access/relation.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "parser/parse_func.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "compat.h"
#include "spi_util.h"
#include "sealing.h"
#include "header_rules.h"

PG_FUNCTION_INFO_V1(webhook_header_problem);
PG_FUNCTION_INFO_V1(webhook_expression_problem);

/*
 * SQL (0.1.0): webhook._header_problem(name, value), which the 0.1.0
 * endpoints trigger turns into its errors: NULL, or 'name', 'reserved' or
 * 'value', by the rule the worker and the 0.2.0 trigger apply
 * (header_rules.c).  A name too long is a bad name to that trigger.
 */
Datum
webhook_header_problem(PG_FUNCTION_ARGS)
{
	const char *answer = NULL;

	switch (webhook_header_check(text_to_cstring(PG_GETARG_TEXT_PP(0)),
								 text_to_cstring(PG_GETARG_TEXT_PP(1))))
	{
		case HEADER_OK:
			break;
		case HEADER_BAD_NAME:
		case HEADER_NAME_TOO_LONG:
			answer = "name";
			break;
		case HEADER_RESERVED:
			answer = "reserved";
			break;
		case HEADER_BAD_VALUE:
			answer = "value";
			break;
	}
	if (answer == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(answer));
}

/*
 * SQL (0.1.0): webhook._expression_problem(condition), which the 0.1.0
 * watch() asks before it pastes a condition into its trial query.  The rule
 * is today's (watch_condition.c): PostgreSQL's parser must read exactly one
 * expression, so the text cannot close the parentheses it is put in.  Text
 * that breaks it gets that rule's error; NULL otherwise.
 */
Datum
webhook_expression_problem(PG_FUNCTION_ARGS)
{
	(void) webhook_condition_expression(text_to_cstring(PG_GETARG_TEXT_PP(0)));
	PG_RETURN_NULL();
}

/*
 * Does the schema still hold the release's endpoints trigger?  The released
 * 0.1.0 (git 2b8c360) is the only install with webhook._header_problem().
 */
static bool
release_schema(void)
{
	Oid			argtypes[2] = {TEXTOID, TEXTOID};

	return OidIsValid(LookupFuncName(list_make2(makeString("webhook"), makeString("_header_problem")),
									 2, argtypes, true));
}

/*
 * For webhook._secret_problem() (signing.c): the released 0.1.0 endpoints
 * trigger checks the stored secret at every write, sealed or not, and 0.1.0
 * opened a sealed one to judge it.  Today no caller gets a ciphertext
 * judged, so under that schema a sealed secret passes unopened, as one
 * checked when it was written; under any other it is judged as it stands.
 */
bool
webhook_compat_sealed_secret_passes(const char *secret)
{
	return webhook_is_sealed(secret) && release_schema();
}

/* A text[] column of an SPI row, detoasted; NULL for a null. */
static ArrayType *
text_array_column(HeapTuple tup, TupleDesc desc, int column)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, desc, column, &isnull);

	return isnull ? NULL : DatumGetArrayTypeP(d);
}

/*
 * Columns 3 to 5 of the watch trigger's options query on a 0.1.0 schema
 * (columns text[], condition text, exclude_columns text[]) as watch() keeps
 * them now: int2[] column numbers (0 for none) and the condition parsed,
 * as pg_node_tree text (NULL for none).  Names are looked up and the
 * condition parsed at each statement, as 0.1.0 did, with watch()'s errors
 * for a column or a condition that no longer fits the table.
 */
void
webhook_compat_watch_row(Oid relid, HeapTuple tup, TupleDesc desc, Datum *columns,
						 char **condition, Datum *exclude_columns)
{
	Relation	rel = relation_open(relid, AccessShareLock);
	Datum		kept[2];

	webhook_watch_kept_form(rel, text_array_column(tup, desc, 3), SPI_getvalue(tup, desc, 4),
							text_array_column(tup, desc, 5), kept, condition);
	*columns = kept[0];
	*exclude_columns = kept[1];
	relation_close(rel, AccessShareLock);
}

/*
 * Before ALTER EXTENSION webhook UPDATE to 0.3.0 or later, a watch's events
 * go through the schema's own webhook._enqueue_many(type, payloads), which
 * also writes their deliveries: the payloads selected into tuptable, as one
 * jsonb[].  Runs as the caller set it: the extension's owner.
 */
void
webhook_compat_enqueue_many(SPITupleTable *tuptable, uint64 nrows, const char *event_type)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[2] = {TEXTOID, JSONBARRAYOID};
	Datum		values[2];
	Datum	   *payloads;
	int			dims[1];
	int			lbs[1] = {1};
	int			ret;

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
	values[0] = CStringGetTextDatum(event_type);
	values[1] = PointerGetDatum(construct_md_array(payloads, NULL, 1, dims, lbs,
												   JSONBOID, -1, false, TYPALIGN_INT));
	ret = SPI_execute_plan(webhook_prepare_once(&plan, "SELECT webhook._enqueue_many($1, $2)", 2, argtypes),
						   values, NULL, false, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not enqueue the events: %s", SPI_result_code_string(ret));
}
