/*
 * unseal_cache.c
 *		The delivery worker's plain copies of the sealed values it opened:
 *		an endpoint's secret, password or header is decrypted once, not for
 *		every delivery.
 *
 * Every claim sends up to hundreds of deliveries to a few endpoints, and
 * opening a sealed value costs a subtransaction, a stat of the key file and
 * an AES-GCM decryption.  A sealed value names its plain value for good
 * under one key (its IV is random, so a changed secret is another sealed
 * value), so the cache is keyed by the sealed text, and emptied whenever
 * the key file is no longer the one the values were opened with: then the
 * next delivery opens them again, and fails as it did without a cache when
 * the key is gone.  A fixed number of slots, each overwritten by the next
 * value that hashes there, bounds it.  Plain values are wiped when dropped.
 */
#include "postgres.h"

#include "common/hashfn.h"
#include "utils/memutils.h"

#include "sealing.h"
#include "unseal_cache.h"

#define UNSEAL_CACHE_SLOTS 256

typedef struct UnsealedValue
{
	char	   *sealed;			/* NULL: an empty slot */
	char	   *plain;
} UnsealedValue;

static UnsealedValue slots[UNSEAL_CACHE_SLOTS];
static int	n_used = 0;
static uint64 opened_under = 0; /* the key the values were opened under
								 * (webhook_master_key_generation) */

/* Free one slot, wiping its plain value. */
static void
drop_slot(UnsealedValue *slot)
{
	if (slot->sealed == NULL)
		return;
	explicit_bzero(slot->plain, strlen(slot->plain));
	pfree(slot->plain);
	pfree(slot->sealed);
	slot->sealed = slot->plain = NULL;
	n_used--;
}

/* The slot a sealed value goes in. */
static UnsealedValue *
slot_of(const char *sealed)
{
	return &slots[hash_bytes((const unsigned char *) sealed, strlen(sealed)) % UNSEAL_CACHE_SLOTS];
}

/* Forget every plain value. */
static void
drop_all(void)
{
	for (int i = 0; i < UNSEAL_CACHE_SLOTS; i++)
		drop_slot(&slots[i]);
}

/*
 * Forget every plain value unless the key they were opened with is still
 * the one loaded, and the loaded one is still the configured one,
 * unchanged: called before each claim, so that a key changed by a reload
 * or on disk applies to the next delivery.
 */
void
unseal_cache_check_key(void)
{
	if (n_used == 0)
		return;
	if (webhook_master_key_generation() != opened_under || !webhook_master_key_unchanged())
		drop_all();
}

/*
 * A palloc'd copy of the plain value of sealed, or NULL if not cached (or
 * cached under a key that is no longer the loaded one).
 */
char *
unseal_cache_get(const char *sealed)
{
	UnsealedValue *slot = slot_of(sealed);

	if (slot->sealed == NULL || strcmp(slot->sealed, sealed) != 0 ||
		webhook_master_key_generation() != opened_under)
		return NULL;
	return pstrdup(slot->plain);
}

/*
 * Remember the plain value of sealed, just opened under the loaded key;
 * values of an older key go first.  Both copies are made before the slot
 * changes, so that running out of memory leaves it whole.
 */
void
unseal_cache_put(const char *sealed, const char *plain)
{
	UnsealedValue *slot = slot_of(sealed);
	char	   *sealed_copy = MemoryContextStrdup(TopMemoryContext, sealed);
	char	   *plain_copy = MemoryContextStrdup(TopMemoryContext, plain);

	if (webhook_master_key_generation() != opened_under)
	{
		drop_all();
		opened_under = webhook_master_key_generation();
	}
	drop_slot(slot);
	slot->sealed = sealed_copy;
	slot->plain = plain_copy;
	n_used++;
}
