/*
 * cluster_sync.h
 *		The sync worker of a Citus coordinator (cluster_sync.c).
 */
#ifndef WEBHOOK_CLUSTER_SYNC_H
#define WEBHOOK_CLUSTER_SYNC_H

#include "postgres.h"

extern void webhook_cluster_sync_start(void);

#endif							/* WEBHOOK_CLUSTER_SYNC_H */
