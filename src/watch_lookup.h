/*
 * watch_lookup.h
 *		A watched table's watch as its trigger reads it, cached per backend.
 */
#ifndef WEBHOOK_WATCH_LOOKUP_H
#define WEBHOOK_WATCH_LOOKUP_H

#include "watch.h"

extern bool watch_lookup(Oid relid, const char *operation, WatchOptions *opts);

#endif							/* WEBHOOK_WATCH_LOOKUP_H */
