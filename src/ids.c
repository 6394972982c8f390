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

#include "enqueue.h"

PG_FUNCTION_INFO_V1(webhook_uuid_v7);

/* The last id this backend made, and its millisecond. */
static pg_uuid_t last_id;
static uint64 last_ms = 0;

/* Write a Unix millisecond into an id's first 48 bits. */
static void
set_unix_ms(pg_uuid_t *uuid, uint64 unix_ms)
{
	for (int i = 0; i < 6; i++)
		uuid->data[i] = (unix_ms >> (40 - 8 * i)) & 0xff;
}

/*
 * The id after last_id in the same millisecond: its 74 random bits (all but
 * the version and variant bits) plus one, as RFC 9562 section 6.2 allows
 * ("monotonic random").  False when they overflow.
 */
static bool
increment_random_bits(pg_uuid_t *uuid)
{
	for (int i = UUID_LEN - 1; i >= 6; i--)
	{
		/* Byte 6 keeps the version nibble, byte 8 the two variant bits. */
		int			mask = i == 6 ? 0x0f : i == 8 ? 0x3f : 0xff;
		int			v = (uuid->data[i] & mask) + 1;

		uuid->data[i] = (uuid->data[i] & ~mask) | (v & mask);
		if (v <= mask)
			return true;
	}
	return false;
}

/*
 * The next event id of this backend.  Ids one backend makes only grow, also
 * within a millisecond or when the clock steps back: the worker reads one
 * transaction's events in id order, and that is the order its callers wrote
 * them in (ordered endpoints rely on it).
 */
void
webhook_next_event_id(pg_uuid_t *uuid)
{
	TimestampTz now = GetCurrentTimestamp();
	uint64		unix_ms = (uint64) (now / 1000) +
	(uint64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY * 1000;

	if (unix_ms <= last_ms)
	{
		memcpy(uuid, &last_id, UUID_LEN);
		if (increment_random_bits(uuid))
		{
			memcpy(&last_id, uuid, UUID_LEN);
			return;
		}
		unix_ms = last_ms + 1;
	}
	if (!pg_strong_random(uuid->data + 6, UUID_LEN - 6))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate random bytes for an event id")));
	set_unix_ms(uuid, unix_ms);
	uuid->data[6] = (uuid->data[6] & 0x0f) | 0x70;	/* version 7 */
	uuid->data[8] = (uuid->data[8] & 0x3f) | 0x80;	/* RFC 4122 variant */
	/* Leave room to count on within this millisecond. */
	uuid->data[9] &= 0x7f;
	memcpy(&last_id, uuid, UUID_LEN);
	last_ms = unix_ms;
}

/* SQL: webhook.uuid_v7(), the ids of events written by SQL (pings, fixtures). */
Datum
webhook_uuid_v7(PG_FUNCTION_ARGS)
{
	pg_uuid_t  *uuid = palloc(UUID_LEN);

	webhook_next_event_id(uuid);
	PG_RETURN_UUID_P(uuid);
}
