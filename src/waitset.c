/*
 * waitset.c
 *		Mirror libcurl's sockets into one PostgreSQL WaitEventSet, together
 *		with the worker's latch and postmaster death.
 *
 * curl tells us, through its socket callback, which sockets to watch and
 * for what.  The callbacks only record that wish (no ereport may happen
 * inside libcurl); waitset_sync() applies it afterwards: a new socket or a
 * changed interest is applied in place, while a socket curl stops watching
 * makes the set be rebuilt, because curl may then close it without telling
 * us and its number may come back as another file.
 */
#include "postgres.h"

#include <unistd.h>

#include "miscadmin.h"
#include "storage/latch.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/wait_event.h"

#include "waitset.h"

typedef struct SocketEntry
{
	curl_socket_t fd;			/* hash key */
	int			what;			/* what curl wants: CURL_POLL_IN/OUT/INOUT, 0
								 * none */
	uint32		registered;		/* WL_SOCKET_* now in the wait set, 0 if none */
	int			pos;			/* position in the wait set, -1 if none */
	bool		closed;			/* curl closed it; forget at next sync */
} SocketEntry;

static HTAB *entries = NULL;
static WaitEventSet *wait_set = NULL;
static int	capacity = 0;
static int	used = 0;
static bool stale = true;

/* Create the socket table; capacity bounds the wait set. */
void
waitset_init(int max_sockets)
{
	HASHCTL		ctl;

	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(curl_socket_t);
	ctl.entrysize = sizeof(SocketEntry);
	entries = hash_create("webhook curl sockets", 1024, &ctl, HASH_ELEM | HASH_BLOBS);
	capacity = max_sockets + 2;
	stale = true;
}

/* Forget every socket: the multi handle that owned them is gone. */
void
waitset_reset(void)
{
	HASH_SEQ_STATUS status;
	SocketEntry *e;

	hash_seq_init(&status, entries);
	while ((e = hash_seq_search(&status)) != NULL)
		hash_search(entries, &e->fd, HASH_REMOVE, NULL);
	stale = true;
}

/* curl's CURLMOPT_SOCKETFUNCTION: note what curl wants for a socket. */
int
waitset_socket_callback(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	bool		found;
	SocketEntry *e;

	if (what == CURL_POLL_REMOVE)
	{
		/*
		 * curl may close the socket at any time from now on without telling
		 * us, and its number may be reused: forget it, and rebuild the set.
		 */
		if (hash_search(entries, &fd, HASH_REMOVE, NULL) != NULL)
			stale = true;
		return 0;
	}
	e = hash_search(entries, &fd, HASH_ENTER, &found);
	if (!found || e->closed)
	{
		/* A new socket, or a new one that reuses a closed one's number. */
		e->registered = 0;
		e->pos = -1;
		e->closed = false;
	}
	e->what = what;
	return 0;
}

/* curl's CURLOPT_CLOSESOCKETFUNCTION: the socket is going away. */
int
waitset_close_callback(void *clientp, curl_socket_t fd)
{
	SocketEntry *e = hash_search(entries, &fd, HASH_FIND, NULL);

	/* Closing removes it from epoll; our slot for it is simply dead. */
	if (e)
	{
		e->closed = true;
		e->what = 0;
	}
	return close(fd);
}

/* WL_SOCKET_* events for what curl wants. */
static uint32
events_for(int what)
{
	uint32		events = 0;

	if (what & CURL_POLL_IN)
		events |= WL_SOCKET_READABLE;
	if (what & CURL_POLL_OUT)
		events |= WL_SOCKET_WRITEABLE;
	return events;
}

/* A fresh set with the latch, postmaster death and the sockets curl watches. */
static void
rebuild(void)
{
	HASH_SEQ_STATUS status;
	SocketEntry *e;

	if (wait_set)
		FreeWaitEventSet(wait_set);
	wait_set = CreateWaitEventSet(TopMemoryContext, capacity + 2);
	AddWaitEventToSet(wait_set, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
	AddWaitEventToSet(wait_set, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);
	used = 0;

	hash_seq_init(&status, entries);
	while ((e = hash_seq_search(&status)) != NULL)
	{
		if (e->closed)
		{
			hash_search(entries, &e->fd, HASH_REMOVE, NULL);
			continue;
		}
		e->pos = -1;
		e->registered = 0;
		if (e->what != 0 && used < capacity)
		{
			e->registered = events_for(e->what);
			e->pos = AddWaitEventToSet(wait_set, e->registered, e->fd, NULL, NULL);
			used++;
		}
	}
	stale = false;
}

/* Bring the wait set in line with what curl asked for since the last call. */
void
waitset_sync(void)
{
	HASH_SEQ_STATUS status;
	SocketEntry *e;

	if (wait_set == NULL || stale)
	{
		rebuild();
		return;
	}
	hash_seq_init(&status, entries);
	while ((e = hash_seq_search(&status)) != NULL)
	{
		uint32		want;

		if (e->closed)
		{
			hash_search(entries, &e->fd, HASH_REMOVE, NULL);
			continue;
		}
		want = events_for(e->what);
		if (want == e->registered)
			continue;
		if (e->pos >= 0)
			ModifyWaitEvent(wait_set, e->pos, want, NULL);
		else if (used < capacity)
		{
			e->pos = AddWaitEventToSet(wait_set, want, e->fd, NULL, NULL);
			used++;
		}
		else
		{
			hash_seq_term(&status);
			rebuild();
			return;
		}
		e->registered = want;
	}
}

/*
 * Wait for the latch, a socket or the timeout.  Returns the socket events
 * that curl should act on in occurred (fd and WL_SOCKET_* flags), and sets
 * *latch_set when the latch was set.
 */
int
waitset_wait(long timeout_ms, WaitEvent *occurred, int max_events, bool *latch_set)
{
	int			n;
	int			kept = 0;

	waitset_sync();
	n = WaitEventSetWait(wait_set, timeout_ms, occurred, max_events, PG_WAIT_EXTENSION);
	*latch_set = false;
	for (int i = 0; i < n; i++)
	{
		if (occurred[i].events & WL_LATCH_SET)
		{
			ResetLatch(MyLatch);
			*latch_set = true;
		}
		else if (occurred[i].events & (WL_SOCKET_READABLE | WL_SOCKET_WRITEABLE))
		{
			SocketEntry *e = hash_search(entries, &occurred[i].fd, HASH_FIND, NULL);

			/* A socket curl stopped watching since is not its business now. */
			if (e != NULL && !e->closed && e->what != 0)
				occurred[kept++] = occurred[i];
		}
	}
	return kept;
}
