/*
 * spi_util.h
 *		SPI plans prepared once per process, and subtransactions (spi_util.c);
 *		used by the worker's queries and by the watch trigger.
 */
#ifndef WEBHOOK_SPI_UTIL_H
#define WEBHOOK_SPI_UTIL_H

#include "postgres.h"

#include "executor/spi.h"

extern SPIPlanPtr webhook_prepare_once(SPIPlanPtr *plan, const char *sql, int nargs, Oid *argtypes);
extern int	webhook_execute_by_probes(SPIPlanPtr plan, Datum *values, const char *nulls, bool read_only,
									  long count);
extern ErrorData *webhook_try_in_subtransaction(void (*fn) (void *), void *arg);

#endif							/* WEBHOOK_SPI_UTIL_H */
