/*
 * spi_util.c
 *		SPI plans prepared once and kept for the life of the process, for
 *		statements a process runs again and again (the worker's claim, the
 *		watch trigger's insert).
 */
#include "postgres.h"

#include "executor/spi.h"

#include "spi_util.h"

/*
 * Prepare a statement once, and keep it for the life of the process: the
 * parse and plan are paid once, not per call.
 */
SPIPlanPtr
webhook_prepare_once(SPIPlanPtr *plan, const char *sql, int nargs, Oid *argtypes)
{
	if (*plan == NULL)
	{
		SPIPlanPtr	p = SPI_prepare(sql, nargs, argtypes);

		if (p == NULL)
			elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		SPI_keepplan(p);
		*plan = p;
	}
	return *plan;
}
