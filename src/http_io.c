/*
 * http_io.c
 *		The delivery worker's network thread.  It owns the libcurl multi
 *		handle: it adds the requests that the worker's main thread prepared
 *		(http.c), lets libcurl move them, and hands back the finished ones.
 *		libcurl and the kernel's socket work were 40% of the worker's time
 *		per delivery in one thread; here they run beside the main thread's
 *		reading, signing and recording, on another core.
 *
 * What makes a thread safe inside a PostgreSQL backend:
 * - It runs no PostgreSQL backend code: no palloc, no ereport, no latch, no
 *   shared memory, no setting.  It calls libcurl, pthreads, libc and pure
 *   functions of PostgreSQL's port library (pg_strncasecmp) only.  Its
 *   libcurl callbacks copy bytes into fields of the Delivery, which the main
 *   thread allocated beforehand and does not touch until the request comes
 *   back through the finished queue.
 * - It blocks every signal, so that PostgreSQL's handlers run in the main
 *   thread, as they expect.
 * - The threads share only what is below, under io_lock (the queues and
 *   the multi handle's replacement) or policy_lock (the network policy).
 *   The main thread makes every multi handle; the thread only uses them.
 * - It is stopped and joined before the process exits (before_shmem_exit),
 *   so that no exit handler (OpenSSL's among them) runs under it; and
 *   before a stopping worker's last recording, so that what it records is
 *   all that was sent (http_io_stop).
 *
 * The main thread still sleeps in a WaitEventSet with its latch (http.c);
 * the thread wakes it through an eventfd (done_fd) when finished requests
 * wait.  The thread sleeps in an epoll set of its own with the sockets
 * libcurl watches and another eventfd (kick_fd), which the main thread
 * writes when it queued requests or wants the thread to stop.  libcurl's
 * socket interface acts only on the sockets that are ready, so a pass
 * costs what happened, not the number of requests in flight.
 */
#include "postgres.h"

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "port/atomics.h"
#include "storage/ipc.h"

#include "webhook.h"

#include "http_io.h"

/* Socket events taken from the epoll set per pass. */
#define IO_MAX_EVENTS 256

/* Deliveries in the order they came, linked through io_next. */
typedef struct IoQueue
{
	Delivery   *head;
	Delivery   *tail;
	int			n;
} IoQueue;

static pthread_mutex_t io_lock = PTHREAD_MUTEX_INITIALIZER;
static IoQueue submitted;		/* prepared, not yet added to libcurl */
static IoQueue finished;		/* done, not yet taken by the main thread */
static CURLM *fresh_multi = NULL;	/* use this one from the next request on */
static bool stopping = false;
static CURLM *multi = NULL;		/* the thread's; replaced by it, under io_lock */

static pthread_mutex_t policy_lock = PTHREAD_MUTEX_INITIALIZER;
static NetGuardPolicy io_policy;
static bool io_policy_valid = false;

/* Made before the thread starts. */
static int	done_fd = -1;		/* the thread signals finished requests */
static int	kick_fd = -1;		/* the main thread signals submissions */
static int	epoll_fd = -1;		/* the thread's: kick_fd and libcurl's sockets */

/* Sockets the thread could not watch (the main thread warns of them). */
static pg_atomic_uint32 watch_failures;

/* The thread's own. */
static int64 timer_due_us = -1; /* when libcurl's timer fires (µs,
								 * monotonic), or -1 */
static bool socket_removed = false; /* libcurl let go of a socket during this
									 * pass */

/* The main thread's own. */
static pthread_t io_thread;
static bool started = false;
static bool kick_needed = false;
static long io_max_connections = 1000;

/* Append d to q. */
static void
queue_push(IoQueue *q, Delivery *d)
{
	d->io_next = NULL;
	if (q->tail)
		q->tail->io_next = d;
	else
		q->head = d;
	q->tail = d;
	q->n++;
}

/* Take every delivery out of q, in order. */
static Delivery *
queue_take_all(IoQueue *q)
{
	Delivery   *all = q->head;

	q->head = q->tail = NULL;
	q->n = 0;
	return all;
}

/* Monotonic time in microseconds, for libcurl's timer. */
static int64
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/*
 * In the thread: apply libcurl's wish for a socket to the epoll set.  A
 * socket libcurl already closed left the set by itself; one whose number
 * came back is added anew.
 */
static int
socket_callback(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	struct epoll_event ev;

	if (what == CURL_POLL_REMOVE)
	{
		(void) epoll_ctl(epoll_fd, EPOLL_CTL_DEL, fd, NULL);
		socket_removed = true;
		return 0;
	}
	memset(&ev, 0, sizeof(ev));
	ev.events = ((what & CURL_POLL_IN) ? EPOLLIN : 0) | ((what & CURL_POLL_OUT) ? EPOLLOUT : 0);
	ev.data.fd = fd;

	/*
	 * A socket left unwatched (the kernel's max_user_watches reached) makes
	 * its request wait for its timeout; failing here would fail the whole
	 * multi handle.
	 */
	if (epoll_ctl(epoll_fd, EPOLL_CTL_MOD, fd, &ev) != 0 &&
		(errno != ENOENT || epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &ev) != 0))
		pg_atomic_fetch_add_u32(&watch_failures, 1);
	return 0;
}

/*
 * In the thread: remember when libcurl wants to act without a socket.  A
 * multi handle being closed after a swap has no say.
 */
static int
timer_callback(CURLM *m, long timeout_ms, void *userp)
{
	if (m != multi)
		return 0;
	timer_due_us = timeout_ms < 0 ? -1 : now_us() + (int64) timeout_ms * 1000;
	return 0;
}

/* In the thread: milliseconds until libcurl's timer, 0 if due, -1 if none. */
static int
timer_wait_ms(void)
{
	int64		left;

	if (timer_due_us < 0)
		return -1;
	left = timer_due_us - now_us();
	return left <= 0 ? 0 : (int) Min((left + 999) / 1000, INT_MAX);
}

/*
 * In the main thread: a multi handle, which owns the connection pool,
 * keeping as many idle connections as requests may be in flight.  Beyond
 * io_max_connections sockets, requests wait in libcurl's queue rather than
 * fail.
 */
static CURLM *
new_multi(void)
{
	CURLM	   *m = curl_multi_init();

	if (m == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("could not create a libcurl multi handle")));
	curl_multi_setopt(m, CURLMOPT_SOCKETFUNCTION, socket_callback);
	curl_multi_setopt(m, CURLMOPT_TIMERFUNCTION, timer_callback);
	curl_multi_setopt(m, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
	curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, (long) webhook_max_in_flight);
	curl_multi_setopt(m, CURLMOPT_MAX_TOTAL_CONNECTIONS, io_max_connections);
	return m;
}

/*
 * Refuse to connect to addresses the network policy forbids.  This runs for
 * the address curl resolved and is about to connect to, so a DNS name that
 * points somewhere private (or is rebound to) is caught.  Through a proxy,
 * that address is the proxy's: webhook.proxy, a superuser's choice, is let
 * through; an endpoint's own proxy is checked like a receiver (proxy.c).
 */
static curl_socket_t
open_socket_callback(void *clientp, curlsocktype purpose, struct curl_sockaddr *address)
{
	Delivery   *d = (Delivery *) clientp;
	const char *klass = NULL;

	if (!d->proxy_trusted)
	{
		pthread_mutex_lock(&policy_lock);
		if (!io_policy_valid)
			klass = HTTP_INVALID_POLICY;
		else
			klass = netguard_check(&io_policy, &address->addr);
		pthread_mutex_unlock(&policy_lock);
	}
	if (klass != NULL)
	{
		d->blocked_class = klass;
		return CURL_SOCKET_BAD;
	}
	return socket(address->family, address->socktype, address->protocol);
}

/* Keep the first bytes of the response for the log; drop the rest. */
static size_t
write_callback(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	Delivery   *d = (Delivery *) userdata;
	size_t		n = size * nmemb;

	if (d->response_len < d->response_cap)
	{
		size_t		keep = Min(n, d->response_cap - d->response_len);

		memcpy(d->response + d->response_len, ptr, keep);
		d->response_len += keep;
	}
	d->response_seen += n;
	if (d->response_seen > HTTP_RESPONSE_READ_LIMIT)
	{
		/* The status is known; a huge body is not worth the bandwidth. */
		d->response_cut = true;
		return CURL_WRITEFUNC_ERROR;
	}
	return n;
}

/* The seconds a Retry-After value asks for (seconds or a date), or -1. */
static int
retry_after_seconds(const char *value)
{
	char	   *end;
	long		seconds = strtol(value, &end, 10);
	time_t		when;

	if (end != value && *end == '\0' && seconds >= 0)
		return (int) Min(seconds, INT_MAX);
	when = curl_getdate(value, NULL);
	/* In time_t, so that a date decades ahead cannot wrap around. */
	if (when > 0)
		return (int) Min(Max(when - time(NULL), 0), INT_MAX);
	return -1;
}

/* Count the response's header bytes, and pick Retry-After out of them. */
static size_t
header_callback(char *buffer, size_t size, size_t nitems, void *userdata)
{
	Delivery   *d = (Delivery *) userdata;
	size_t		n = size * nitems;

	d->header_bytes += n;
	if (d->header_bytes > HTTP_RESPONSE_HEADERS_LIMIT)
	{
		d->headers_too_large = true;
		return 0;				/* abort the transfer */
	}
	if (n > 12 && pg_strncasecmp(buffer, "retry-after:", 12) == 0)
	{
		char		value[64];
		size_t		len = Min(n - 12, sizeof(value) - 1);
		char	   *p = value;
		int			seconds;

		memcpy(value, buffer + 12, len);
		value[len] = '\0';
		while (*p == ' ' || *p == '\t')
			p++;
		while (len > 0 && (value[len - 1] == '\r' || value[len - 1] == '\n' || value[len - 1] == ' '))
			value[--len] = '\0';
		seconds = retry_after_seconds(p);
		if (seconds >= 0)
			d->retry_after_s = seconds;
	}
	return n;
}

/*
 * The callbacks of a transfer, which run in the thread and only fill
 * fields of its delivery.
 */
void
http_io_configure(Delivery *d)
{
	CURL	   *e = d->easy;

	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_callback);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, d);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_callback);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, d);
	curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, open_socket_callback);
	curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, d);
	curl_easy_setopt(e, CURLOPT_PRIVATE, d);
}

/*
 * In the thread: hand the requests just submitted to libcurl.  One libcurl
 * refuses ends at once, as a failed transfer.
 */
static void
add_submitted(Delivery *d, IoQueue *done)
{
	while (d != NULL)
	{
		Delivery   *next = d->io_next;

		CURLMcode	rc = curl_multi_add_handle(multi, d->easy);

		if (rc != CURLM_OK)
		{
			d->io_result = CURLE_FAILED_INIT;
			snprintf(d->curl_error, CURL_ERROR_SIZE, "could not add the request to libcurl: %s",
					 curl_multi_strerror(rc));
			queue_push(done, d);
		}
		d = next;
	}
}

/* In the thread: take the transfers libcurl finished, with their outcome. */
static void
collect_finished(IoQueue *done)
{
	CURLMsg    *msg;
	int			queued;

	while ((msg = curl_multi_info_read(multi, &queued)) != NULL)
	{
		Delivery   *d;
		curl_off_t	uploaded = 0;
		long		header_bytes = 0;
		instr_time	now;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &d);
		d->io_result = msg->data.result;
		curl_easy_getinfo(d->easy, CURLINFO_RESPONSE_CODE, &d->status_code);
		curl_easy_getinfo(d->easy, CURLINFO_SIZE_UPLOAD_T, &uploaded);
		curl_easy_getinfo(d->easy, CURLINFO_REQUEST_SIZE, &header_bytes);
		d->bytes_sent = (uint64) uploaded + (uint64) header_bytes;
		INSTR_TIME_SET_CURRENT(now);
		INSTR_TIME_SUBTRACT(now, d->started);
		d->duration_ms = INSTR_TIME_GET_MILLISEC(now);
		curl_multi_remove_handle(multi, d->easy);
		queue_push(done, d);
	}
}

/*
 * In the thread: pass finished requests to the main thread, and wake it
 * when the queue was empty (otherwise it has not taken the earlier ones
 * yet, and knows that more wait).
 */
static void
hand_back(IoQueue *done)
{
	bool		was_empty;
	uint64		one = 1;

	if (done->n == 0)
		return;
	pthread_mutex_lock(&io_lock);
	was_empty = finished.n == 0;
	if (finished.tail)
		finished.tail->io_next = done->head;
	else
		finished.head = done->head;
	finished.tail = done->tail;
	finished.n += done->n;
	pthread_mutex_unlock(&io_lock);
	memset(done, 0, sizeof(*done));
	/* It fails only when the counter is full: readable already. */
	if (was_empty && write(done_fd, &one, sizeof(one)) < 0)
		return;
}

/*
 * In the thread: let libcurl act on the sockets epoll found ready.  Once
 * libcurl let go of a socket, the rest of the events wait for the next
 * pass (the set is level-triggered): one of them may name a socket closed
 * meanwhile whose number a new connection took, and its stale error flag
 * would fail a new request.  An error or hang-up is passed on as libcurl's
 * own poll loop does, so that libcurl finds out what it was.
 */
static void
act_on_sockets(struct epoll_event *events, int n)
{
	int			running;

	socket_removed = false;
	for (int i = 0; i < n && !socket_removed; i++)
	{
		uint32		ev = events[i].events;
		int			flags = 0;

		if (events[i].data.fd == kick_fd)
		{
			uint64		count;

			/*
			 * Only resets the counter (it fails only when that is zero): the
			 * next pass looks at the queue.
			 */
			if (read(kick_fd, &count, sizeof(count)) <= 0)
				count = 0;
			continue;
		}
		if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR))
			flags |= CURL_CSELECT_IN;
		if (ev & (EPOLLOUT | EPOLLHUP | EPOLLERR))
			flags |= CURL_CSELECT_OUT;
		if (ev & EPOLLERR)
			flags |= CURL_CSELECT_ERR;
		curl_multi_socket_action(multi, events[i].data.fd, flags, &running);
	}
	if (timer_due_us >= 0 && timer_wait_ms() == 0)
	{
		timer_due_us = -1;
		curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0, &running);
	}
}

/*
 * The thread: take what the main thread submitted (through a new multi
 * handle, if it made one), sleep until a socket, libcurl's timer or the
 * main thread needs it (not at all when requests were just added: their
 * timer is due), let libcurl act, and hand back the finished requests.
 */
static void *
io_main(void *arg)
{
	struct epoll_event events[IO_MAX_EVENTS];

	for (;;)
	{
		IoQueue		done = {0};
		Delivery   *batch;
		CURLM	   *old = NULL;
		int			n;

		pthread_mutex_lock(&io_lock);
		if (stopping)
		{
			pthread_mutex_unlock(&io_lock);
			break;
		}
		if (fresh_multi)
		{
			old = multi;
			multi = fresh_multi;
			fresh_multi = NULL;
		}
		batch = queue_take_all(&submitted);
		pthread_mutex_unlock(&io_lock);

		/*
		 * Nothing is in flight on the old one (the main thread asks only
		 * then): closing its idle connections holds up no one.
		 */
		if (old)
			curl_multi_cleanup(old);
		add_submitted(batch, &done);
		n = epoll_wait(epoll_fd, events, IO_MAX_EVENTS, timer_wait_ms());
		act_on_sockets(events, Max(n, 0));
		collect_finished(&done);
		hand_back(&done);
	}
	return NULL;
}

/* Wake the thread: it looks at the queue and at stopping. */
static void
kick_thread(void)
{
	uint64		one = 1;

	/* It fails only when the counter is full: the thread wakes anyway. */
	if (write(kick_fd, &one, sizeof(one)) < 0)
		return;
}

/*
 * Stop the thread and wait for it: nothing is sent or finished any more,
 * and what finished waits in the queue.  It returns within one pass of
 * its loop: libcurl resolves names asynchronously (checked at start), and
 * a transfer that ends during a lookup does not wait for it (QUICK_EXIT,
 * http.c).
 */
void
http_io_stop(void)
{
	if (!started)
		return;
	pthread_mutex_lock(&io_lock);
	stopping = true;
	pthread_mutex_unlock(&io_lock);
	kick_thread();
	(void) pthread_join(io_thread, NULL);
	started = false;
}

/* Before the process's exit handlers, OpenSSL's among them. */
static void
stop_at_exit(int code, Datum arg)
{
	http_io_stop();
}

/*
 * The descriptors the threads signal each other through, and the thread's
 * epoll set, which watches kick_fd from the start.
 */
static void
open_descriptors(void)
{
	struct epoll_event ev;

	done_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	kick_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	if (done_fd < 0 || kick_fd < 0 || epoll_fd < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not create the network thread's descriptors: %m")));
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN;
	ev.data.fd = kick_fd;
	if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, kick_fd, &ev) != 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not watch the network thread's eventfd: %m")));
}

/*
 * Start the thread, with every signal blocked in it, and the multi handle
 * it uses.  After curl_global_init, which is not thread-safe.
 */
void
http_io_start(long max_connections)
{
	sigset_t	all;
	sigset_t	old;
	int			rc;

	/*
	 * A name lookup inside libcurl's loop would hold up every request and a
	 * stop.
	 */
	if (!(curl_version_info(CURLVERSION_NOW)->features & CURL_VERSION_ASYNCHDNS))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("libcurl resolves host names synchronously"),
				 errhint("Install a libcurl built with the threaded resolver or c-ares.")));
	io_max_connections = max_connections;
	pg_atomic_init_u32(&watch_failures, 0);
	open_descriptors();
	multi = new_multi();
	before_shmem_exit(stop_at_exit, (Datum) 0);
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&io_thread, NULL, io_main, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0)
	{
		errno = rc;
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
				 errmsg("could not start the delivery worker's network thread: %m")));
	}
	started = true;
}

/* The network policy that connections are checked against from now on. */
void
http_io_set_policy(const NetGuardPolicy *policy, bool valid)
{
	pthread_mutex_lock(&policy_lock);
	io_policy = *policy;
	io_policy_valid = valid;
	pthread_mutex_unlock(&policy_lock);
}

/*
 * Queue a prepared request; the thread takes it when woken (http_io_kick),
 * so that a batch costs one wake-up.
 */
void
http_io_submit(Delivery *d)
{
	pthread_mutex_lock(&io_lock);
	queue_push(&submitted, d);
	pthread_mutex_unlock(&io_lock);
	kick_needed = true;
}

/*
 * Wake the thread if requests were queued since it was last woken, and
 * let it run now: the scheduler tends to wake it on this core, where it
 * would wait for the worker's next transaction, a quarter of a
 * millisecond added to every request's latency.
 */
void
http_io_kick(void)
{
	if (!kick_needed)
		return;
	kick_thread();
	kick_needed = false;
	sched_yield();
}

/*
 * Open no connection of the old pool again: the thread takes a new multi
 * handle before it adds the next request.  Only while nothing is in
 * flight.  One made earlier and not yet taken is never used: it goes.
 */
void
http_io_fresh_connections(void)
{
	CURLM	   *m = new_multi();
	CURLM	   *unused;

	pthread_mutex_lock(&io_lock);
	unused = fresh_multi;
	fresh_multi = m;
	pthread_mutex_unlock(&io_lock);
	if (unused)
		curl_multi_cleanup(unused);
	kick_needed = true;
}

/* The next finished request, or NULL. */
Delivery *
http_io_take_done(void)
{
	Delivery   *d;

	pthread_mutex_lock(&io_lock);
	d = finished.head;
	if (d)
	{
		finished.head = d->io_next;
		if (finished.head == NULL)
			finished.tail = NULL;
		finished.n--;
	}
	pthread_mutex_unlock(&io_lock);
	return d;
}

/* How many sockets the thread could not watch so far. */
uint32
http_io_watch_failures(void)
{
	return pg_atomic_read_u32(&watch_failures);
}

/* Do finished requests wait to be taken? */
bool
http_io_has_done(void)
{
	bool		any;

	pthread_mutex_lock(&io_lock);
	any = finished.n > 0;
	pthread_mutex_unlock(&io_lock);
	return any;
}

/* The descriptor that becomes readable when finished requests wait. */
pgsocket
http_io_done_fd(void)
{
	return done_fd;
}

/* Reset that descriptor, before the finished queue is emptied. */
void
http_io_clear_done_fd(void)
{
	uint64		count;

	/* It fails only when the counter is zero: nothing to reset. */
	if (read(done_fd, &count, sizeof(count)) < 0)
		return;
}
