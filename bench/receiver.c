/*
 * receiver.c -- the benchmark's webhook receiver.
 *
 * A small single-threaded epoll HTTP/1.1 server with no dependencies:
 *
 *     cc -O2 -o bench/tmp/receiver bench/receiver.c
 *     bench/tmp/receiver PORT [LATENCY_LOG]
 *
 * Listens on 127.0.0.1:PORT (0 picks a free port) and prints
 * "listening 127.0.0.1:<port>" on stdout once it accepts connections.
 * Every request is parsed (request line, headers, Content-Length body;
 * pipelined requests are answered in order) and answered with
 * "HTTP/1.1 200 OK" and the 2-byte body "ok", on a keep-alive connection.
 *
 *   /slow...   answered after 1 s; a timer queue holds the answer, the loop
 *              keeps serving every other connection meanwhile.
 *   /lat...    also appends "<webhook-id> <receipt CLOCK_REALTIME in us>\n"
 *              to LATENCY_LOG (buffered; flushed every 100 ms, on SIGUSR1
 *              and at exit).  Receipt is when the whole request was read.
 *
 * SIGUSR1 writes "requests <count>" to stderr (and flushes the log);
 * SIGTERM or SIGINT exits cleanly, writing the count too.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_HEADER_BYTES (64 * 1024)	/* request line + headers */
#define MAX_BODY_BYTES (64LL * 1024 * 1024)
#define SLOW_DELAY_MS 1000
#define LOG_FLUSH_MS 100
#define LOG_BUF_BYTES (1024 * 1024)
#define READ_CHUNK 65536

static const char RESPONSE[] =
"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok";
static const char RESPONSE_CLOSE[] =
"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
static const char BAD_REQUEST[] =
"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

/* One answer owed on a connection, in request order. */
typedef struct Pending
{
	uint64_t	ready_at_ms;	/* 0: ready now */
	int			close;			/* Connection: close after this answer */
} Pending;

typedef struct Conn
{
	int			fd;
	unsigned	gen;			/* tells a reused fd from the old connection */
	int			open;
	int			epoll_out;		/* EPOLLOUT registered */

	char	   *rbuf;
	size_t		rlen, rcap;

	char	   *wbuf;
	size_t		wlen, woff, wcap;

	/* the request whose body is being read */
	int			in_body;
	long long	body_left;
	int			cur_slow, cur_lat, cur_close;
	char		cur_id[128];

	/* answers owed, oldest first */
	Pending    *pend;
	size_t		phead, pcount, pcap;

	int			stop_reading;	/* a Connection: close request was seen */
	int			close_when_flushed;
	int			peer_closed;	/* read EOF: answer what is owed, then close */
} Conn;

/* A delayed answer; all delays are equal, so a FIFO is in time order. */
typedef struct Timer
{
	uint64_t	at_ms;
	int			fd;
	unsigned	gen;
} Timer;

static Conn *conns;
static int	conns_cap;
static Timer *timers;
static size_t t_head, t_count, t_cap;
static int	epfd;
static unsigned long long n_requests;
static int	log_fd = -1;
static char *log_buf;
static size_t log_len;
static uint64_t last_log_flush_ms;

static uint64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t
real_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void *
xrealloc(void *p, size_t n)
{
	void	   *q = realloc(p, n);

	if (q == NULL)
	{
		fprintf(stderr, "receiver: out of memory\n");
		exit(1);
	}
	return q;
}

static void
log_flush(void)
{
	size_t		off = 0;

	while (off < log_len)
	{
		ssize_t		n = write(log_fd, log_buf + off, log_len - off);

		if (n < 0)
		{
			if (errno == EINTR)
				continue;
			perror("receiver: write latency log");
			break;
		}
		off += (size_t) n;
	}
	log_len = 0;
	last_log_flush_ms = mono_ms();
}

static void
log_receipt(const char *id, uint64_t us)
{
	if (log_fd < 0)
		return;
	if (log_len + 200 > LOG_BUF_BYTES)
		log_flush();
	log_len += (size_t) snprintf(log_buf + log_len, LOG_BUF_BYTES - log_len, "%s %llu\n",
								 id[0] ? id : "-", (unsigned long long) us);
}

static void
report_count(void)
{
	fprintf(stderr, "requests %llu\n", n_requests);
	fflush(stderr);
}

static void
set_events(Conn *c, int want_out)
{
	struct epoll_event ev;

	if (c->epoll_out == want_out)
		return;
	memset(&ev, 0, sizeof(ev));
	ev.events = (c->peer_closed ? 0 : EPOLLIN | EPOLLRDHUP) | (want_out ? EPOLLOUT : 0);
	ev.data.fd = c->fd;
	epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
	c->epoll_out = want_out;
}

/* Stop polling a connection whose peer has closed its side. */
static void
set_peer_closed(Conn *c)
{
	struct epoll_event ev;

	c->peer_closed = 1;
	memset(&ev, 0, sizeof(ev));
	ev.events = c->epoll_out ? EPOLLOUT : 0;
	ev.data.fd = c->fd;
	epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static void
conn_close(Conn *c)
{
	if (!c->open)
		return;
	epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->open = 0;
	c->gen++;
	c->rlen = c->wlen = c->woff = 0;
	c->phead = c->pcount = 0;
	c->in_body = 0;
	c->stop_reading = c->close_when_flushed = c->peer_closed = 0;
	c->epoll_out = 0;
}

static void
wbuf_append(Conn *c, const char *data, size_t n)
{
	if (c->woff > 0 && c->woff == c->wlen)
		c->woff = c->wlen = 0;
	if (c->wlen + n > c->wcap)
	{
		if (c->woff > 0)
		{
			memmove(c->wbuf, c->wbuf + c->woff, c->wlen - c->woff);
			c->wlen -= c->woff;
			c->woff = 0;
		}
		while (c->wlen + n > c->wcap)
			c->wcap = c->wcap ? c->wcap * 2 : 4096;
		c->wbuf = xrealloc(c->wbuf, c->wcap);
	}
	memcpy(c->wbuf + c->wlen, data, n);
	c->wlen += n;
}

/* Write what is buffered; returns -1 when the connection was closed. */
static int
conn_flush(Conn *c)
{
	while (c->woff < c->wlen)
	{
		ssize_t		n = write(c->fd, c->wbuf + c->woff, c->wlen - c->woff);

		if (n < 0)
		{
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
			{
				set_events(c, 1);
				return 0;
			}
			conn_close(c);
			return -1;
		}
		c->woff += (size_t) n;
	}
	c->woff = c->wlen = 0;
	set_events(c, 0);
	if (c->close_when_flushed || (c->peer_closed && c->pcount == 0))
	{
		conn_close(c);
		return -1;
	}
	return 0;
}

/* Move the answers that are due, in order, into the write buffer. */
static void
conn_release_ready(Conn *c, uint64_t now_ms)
{
	while (c->pcount > 0)
	{
		Pending    *p = &c->pend[c->phead];

		if (p->ready_at_ms > now_ms)
			break;
		if (p->close)
		{
			wbuf_append(c, RESPONSE_CLOSE, sizeof(RESPONSE_CLOSE) - 1);
			c->close_when_flushed = 1;
		}
		else
			wbuf_append(c, RESPONSE, sizeof(RESPONSE) - 1);
		c->phead = (c->phead + 1) % c->pcap;
		c->pcount--;
		if (c->close_when_flushed)
		{
			c->pcount = 0;
			break;
		}
	}
}

static void
timer_push(uint64_t at_ms, Conn *c)
{
	if (t_count == t_cap)
	{
		size_t		ncap = t_cap ? t_cap * 2 : 1024;
		Timer	   *nt = xrealloc(NULL, ncap * sizeof(Timer));

		for (size_t i = 0; i < t_count; i++)
			nt[i] = timers[(t_head + i) % t_cap];
		free(timers);
		timers = nt;
		t_head = 0;
		t_cap = ncap;
	}
	timers[(t_head + t_count) % t_cap] = (Timer) {at_ms, c->fd, c->gen};
	t_count++;
}

static void
pend_push(Conn *c, uint64_t ready_at_ms, int close_after)
{
	if (c->pcount == c->pcap)
	{
		size_t		ncap = c->pcap ? c->pcap * 2 : 16;
		Pending    *np = xrealloc(NULL, ncap * sizeof(Pending));

		for (size_t i = 0; i < c->pcount; i++)
			np[i] = c->pend[(c->phead + i) % c->pcap];
		free(c->pend);
		c->pend = np;
		c->phead = 0;
		c->pcap = ncap;
	}
	c->pend[(c->phead + c->pcount) % c->pcap] = (Pending) {ready_at_ms, close_after};
	c->pcount++;
}

/* The whole request (headers and body) has been read. */
static void
request_done(Conn *c, uint64_t now_ms)
{
	n_requests++;
	if (c->cur_lat)
		log_receipt(c->cur_id, real_us());
	if (c->cur_slow)
	{
		uint64_t	at = now_ms + SLOW_DELAY_MS;

		pend_push(c, at, c->cur_close);
		timer_push(at, c);
	}
	else
		pend_push(c, 0, c->cur_close);
	if (c->cur_close)
		c->stop_reading = 1;
}

static int
header_is(const char *name, size_t nlen, const char *want)
{
	return nlen == strlen(want) && strncasecmp(name, want, nlen) == 0;
}

/*
 * Parse one request head in [p, end) (end points at the blank line's CRLF
 * CRLF).  Returns 0, or -1 for a request we cannot serve.
 */
static int
parse_head(Conn *c, const char *p, const char *end)
{
	const char *eol = memmem(p, (size_t) (end - p) + 2, "\r\n", 2);
	const char *sp1, *sp2;
	int			http10;
	int			keep_alive = 0;
	int			close_hdr = 0;

	if (eol == NULL)
		return -1;
	sp1 = memchr(p, ' ', (size_t) (eol - p));
	if (sp1 == NULL)
		return -1;
	sp2 = memchr(sp1 + 1, ' ', (size_t) (eol - sp1 - 1));
	if (sp2 == NULL)
		return -1;
	{
		const char *path = sp1 + 1;
		size_t		plen = (size_t) (sp2 - path);

		c->cur_slow = plen >= 5 && memcmp(path, "/slow", 5) == 0;
		c->cur_lat = plen >= 4 && memcmp(path, "/lat", 4) == 0;
	}
	http10 = (size_t) (eol - sp2 - 1) == 8 && memcmp(sp2 + 1, "HTTP/1.0", 8) == 0;
	c->cur_id[0] = '\0';
	c->body_left = 0;

	p = eol + 2;
	while (p < end + 2)
	{
		const char *colon;
		const char *v;
		const char *vend;

		eol = memmem(p, (size_t) (end + 2 - p), "\r\n", 2);
		if (eol == NULL || eol == p)
			break;
		colon = memchr(p, ':', (size_t) (eol - p));
		if (colon == NULL)
			return -1;
		v = colon + 1;
		while (v < eol && (*v == ' ' || *v == '\t'))
			v++;
		vend = eol;
		while (vend > v && (vend[-1] == ' ' || vend[-1] == '\t'))
			vend--;
		if (header_is(p, (size_t) (colon - p), "content-length"))
		{
			char		num[32];
			size_t		n = (size_t) (vend - v);
			char	   *e;

			if (n == 0 || n >= sizeof(num))
				return -1;
			memcpy(num, v, n);
			num[n] = '\0';
			c->body_left = strtoll(num, &e, 10);
			if (*e != '\0' || c->body_left < 0 || c->body_left > MAX_BODY_BYTES)
				return -1;
		}
		else if (header_is(p, (size_t) (colon - p), "transfer-encoding"))
			return -1;			/* chunked bodies are not needed here */
		else if (header_is(p, (size_t) (colon - p), "webhook-id"))
		{
			size_t		n = (size_t) (vend - v);

			if (n >= sizeof(c->cur_id))
				n = sizeof(c->cur_id) - 1;
			memcpy(c->cur_id, v, n);
			c->cur_id[n] = '\0';
			for (size_t i = 0; i < n; i++)
				if (c->cur_id[i] == ' ' || c->cur_id[i] == '\n')
					c->cur_id[i] = '_';
		}
		else if (header_is(p, (size_t) (colon - p), "connection"))
		{
			if (memmem(v, (size_t) (vend - v), "close", 5) || memmem(v, (size_t) (vend - v), "Close", 5))
				close_hdr = 1;
			else if (strncasecmp(v, "keep-alive", 10) == 0)
				keep_alive = 1;
		}
		p = eol + 2;
	}
	c->cur_close = close_hdr || (http10 && !keep_alive);
	return 0;
}

/* Parse and answer every complete request in the read buffer. */
static void
conn_process(Conn *c, uint64_t now_ms)
{
	size_t		pos = 0;

	while (!c->stop_reading)
	{
		if (c->in_body)
		{
			size_t		avail = c->rlen - pos;
			size_t		take = (long long) avail < c->body_left ? avail : (size_t) c->body_left;

			pos += take;
			c->body_left -= (long long) take;
			if (c->body_left > 0)
				break;
			c->in_body = 0;
			request_done(c, now_ms);
			continue;
		}
		if (pos == c->rlen)
			break;
		{
			const char *start = c->rbuf + pos;
			const char *hend = memmem(start, c->rlen - pos, "\r\n\r\n", 4);

			if (hend == NULL)
			{
				if (c->rlen - pos > MAX_HEADER_BYTES)
					goto bad;
				break;
			}
			/* tolerate blank lines between requests */
			while (start < hend && (*start == '\r' || *start == '\n'))
				start++;
			if (parse_head(c, start, hend) < 0)
				goto bad;
			pos = (size_t) (hend + 4 - c->rbuf);
			c->in_body = 1;
		}
	}
	if (pos > 0)
	{
		memmove(c->rbuf, c->rbuf + pos, c->rlen - pos);
		c->rlen -= pos;
	}
	if (c->stop_reading)
		c->rlen = 0;
	conn_release_ready(c, now_ms);
	conn_flush(c);
	return;

bad:
	c->rlen = 0;
	c->pcount = 0;
	wbuf_append(c, BAD_REQUEST, sizeof(BAD_REQUEST) - 1);
	c->close_when_flushed = 1;
	c->stop_reading = 1;
	conn_flush(c);
}

static void
conn_read(Conn *c, uint64_t now_ms)
{
	for (;;)
	{
		ssize_t		n;
		size_t		space;

		if (c->rcap - c->rlen < READ_CHUNK / 4)
		{
			c->rcap = c->rcap ? c->rcap * 2 : READ_CHUNK;
			c->rbuf = xrealloc(c->rbuf, c->rcap);
		}
		space = c->rcap - c->rlen;
		n = read(c->fd, c->rbuf + c->rlen, space);
		if (n > 0)
		{
			if (c->stop_reading)
				continue;		/* discard anything after Connection: close */
			c->rlen += (size_t) n;
			if ((size_t) n < space)
				break;			/* short read: the socket is drained */
			continue;
		}
		if (n == 0)
		{
			/* Peer closed: answer what it sent, then go. */
			conn_process(c, now_ms);
			if (!c->open)
				return;
			if (c->pcount == 0 && c->woff == c->wlen)
				conn_close(c);
			else
				set_peer_closed(c);
			return;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			break;
		conn_close(c);
		return;
	}
	conn_process(c, now_ms);
}

static void
accept_all(int lfd)
{
	for (;;)
	{
		int			fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		int			one = 1;
		struct epoll_event ev;
		Conn	   *c;

		if (fd < 0)
		{
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				perror("receiver: accept");
			return;
		}
		if (fd >= conns_cap)
		{
			int			ncap = conns_cap;

			while (fd >= ncap)
				ncap *= 2;
			conns = xrealloc(conns, (size_t) ncap * sizeof(Conn));
			memset(conns + conns_cap, 0, (size_t) (ncap - conns_cap) * sizeof(Conn));
			conns_cap = ncap;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		c = &conns[fd];
		c->fd = fd;
		c->open = 1;
		c->rlen = c->wlen = c->woff = 0;
		c->phead = c->pcount = 0;
		c->in_body = 0;
		c->stop_reading = c->close_when_flushed = c->peer_closed = 0;
		c->epoll_out = 0;
		memset(&ev, 0, sizeof(ev));
		ev.events = EPOLLIN | EPOLLRDHUP;
		ev.data.fd = fd;
		if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		{
			perror("receiver: epoll_ctl");
			close(fd);
			c->open = 0;
		}
	}
}

static void
fire_timers(uint64_t now_ms)
{
	while (t_count > 0 && timers[t_head].at_ms <= now_ms)
	{
		Timer		t = timers[t_head];
		Conn	   *c;

		t_head = (t_head + 1) % t_cap;
		t_count--;
		if (t.fd >= conns_cap)
			continue;
		c = &conns[t.fd];
		if (!c->open || c->gen != t.gen)
			continue;
		conn_release_ready(c, now_ms);
		conn_flush(c);			/* closes when the peer had gone */
	}
}

int
main(int argc, char **argv)
{
	int			port;
	int			lfd;
	int			sfd;
	int			one = 1;
	struct sockaddr_in addr;
	socklen_t	alen = sizeof(addr);
	sigset_t	mask;
	struct epoll_event ev;
	struct epoll_event events[256];
	struct rlimit rl;
	int			running = 1;

	if (argc < 2 || argc > 3)
	{
		fprintf(stderr, "usage: %s PORT [LATENCY_LOG]\n", argv[0]);
		return 2;
	}
	port = atoi(argv[1]);
	if (argc == 3)
	{
		log_fd = open(argv[2], O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		if (log_fd < 0)
		{
			perror(argv[2]);
			return 1;
		}
		log_buf = xrealloc(NULL, LOG_BUF_BYTES);
	}

	/* Many keep-alive connections: raise the descriptor limit if we may. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max)
	{
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGUSR1);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);

	lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&addr, 0, sizeof(addr));
	addr.sin_family = AF_INET;
	addr.sin_port = htons((uint16_t) port);
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(lfd, (struct sockaddr *) &addr, sizeof(addr)) < 0 || listen(lfd, 4096) < 0)
	{
		perror("receiver: bind/listen");
		return 1;
	}
	getsockname(lfd, (struct sockaddr *) &addr, &alen);

	conns_cap = 1024;
	conns = xrealloc(NULL, (size_t) conns_cap * sizeof(Conn));
	memset(conns, 0, (size_t) conns_cap * sizeof(Conn));

	epfd = epoll_create1(EPOLL_CLOEXEC);
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN;
	ev.data.fd = lfd;
	epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &ev);
	ev.data.fd = sfd;
	epoll_ctl(epfd, EPOLL_CTL_ADD, sfd, &ev);

	printf("listening 127.0.0.1:%d\n", ntohs(addr.sin_port));
	fflush(stdout);
	last_log_flush_ms = mono_ms();

	while (running)
	{
		int			timeout = -1;
		int			n;
		uint64_t	now;

		now = mono_ms();
		if (t_count > 0)
			timeout = timers[t_head].at_ms > now ? (int) (timers[t_head].at_ms - now) : 0;
		if (log_len > 0)
		{
			int			lt = last_log_flush_ms + LOG_FLUSH_MS > now ? (int) (last_log_flush_ms + LOG_FLUSH_MS - now) : 0;

			if (timeout < 0 || lt < timeout)
				timeout = lt;
		}

		n = epoll_wait(epfd, events, 256, timeout);
		if (n < 0 && errno != EINTR)
		{
			perror("receiver: epoll_wait");
			return 1;
		}
		now = mono_ms();
		for (int i = 0; i < n; i++)
		{
			int			fd = events[i].data.fd;
			Conn	   *c;

			if (fd == lfd)
			{
				accept_all(lfd);
				continue;
			}
			if (fd == sfd)
			{
				struct signalfd_siginfo si;

				while (read(sfd, &si, sizeof(si)) == sizeof(si))
				{
					if (si.ssi_signo == SIGUSR1)
					{
						if (log_fd >= 0)
							log_flush();
						report_count();
					}
					else
						running = 0;
				}
				continue;
			}
			c = &conns[fd];
			if (!c->open)
				continue;
			if ((events[i].events & (EPOLLERR | EPOLLHUP)) && !(events[i].events & EPOLLIN))
			{
				conn_close(c);
				continue;
			}
			if (events[i].events & EPOLLOUT)
			{
				if (conn_flush(c) < 0 || !c->open)
					continue;
			}
			if (!c->peer_closed && (events[i].events & (EPOLLIN | EPOLLRDHUP)))
				conn_read(c, now);
		}
		fire_timers(mono_ms());
		if (log_len > 0 && mono_ms() >= last_log_flush_ms + LOG_FLUSH_MS)
			log_flush();
	}

	if (log_fd >= 0)
	{
		log_flush();
		close(log_fd);
	}
	report_count();
	return 0;
}
