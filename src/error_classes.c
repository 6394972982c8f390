/*
 * error_classes.c
 *		SQL: the error classes of webhook.delivery_log, from the one table
 *		the worker uses (schedule.c), so that SQL never keeps its own list.
 */
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"

#include "schedule.h"

PG_FUNCTION_INFO_V1(webhook_error_classes);

/*
 * SQL: one row per error class, (error_class text, meaning text), in the
 * table's order.  Works without the library preloaded.
 */
Datum
webhook_error_classes(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	InitMaterializedSRF(fcinfo, 0);
	for (int i = ERROR_CLASS_NONE + 1; i < ERROR_CLASS_COUNT; i++)
	{
		Datum		values[2];
		bool		nulls[2] = {false, false};

		values[0] = CStringGetTextDatum(webhook_error_class_table[i].name);
		values[1] = CStringGetTextDatum(webhook_error_class_table[i].meaning);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
