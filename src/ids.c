/*
 * ids.c
 *		Time-ordered event ids (UUID version 7: 48 bits of Unix milliseconds,
 *		then random bits).  Events are inserted in time order, so their
 *		primary key and the deliveries' event index grow at the right edge
 *		instead of touching a random page per row, as random UUIDs would.
 */
#include "postgres.h"

#include "fmgr.h"
#include "port.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

PG_FUNCTION_INFO_V1(webhook_uuid_v7);

/* SQL: webhook.uuid_v7(), the default of webhook.events.id. */
Datum
webhook_uuid_v7(PG_FUNCTION_ARGS)
{
	pg_uuid_t  *uuid = palloc(UUID_LEN);
	TimestampTz now = GetCurrentTimestamp();
	uint64		unix_ms = (uint64) (now / 1000) +
	(uint64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY * 1000;

	if (!pg_strong_random(uuid->data + 6, UUID_LEN - 6))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate random bytes for an event id")));
	for (int i = 0; i < 6; i++)
		uuid->data[i] = (unix_ms >> (40 - 8 * i)) & 0xff;
	uuid->data[6] = (uuid->data[6] & 0x0f) | 0x70;	/* version 7 */
	uuid->data[8] = (uuid->data[8] & 0x3f) | 0x80;	/* RFC 4122 variant */
	PG_RETURN_UUID_P(uuid);
}
