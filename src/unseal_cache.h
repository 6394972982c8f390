/*
 * unseal_cache.h
 *		The delivery worker's plain copies of sealed endpoint values.
 */
#ifndef WEBHOOK_UNSEAL_CACHE_H
#define WEBHOOK_UNSEAL_CACHE_H

extern void unseal_cache_check_key(void);
extern char *unseal_cache_get(const char *sealed);
extern void unseal_cache_put(const char *sealed, const char *plain);

#endif							/* WEBHOOK_UNSEAL_CACHE_H */
