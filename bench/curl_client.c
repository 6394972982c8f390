/*
 * curl_client.c -- the benchmark's bare libcurl client: how fast the
 * library the delivery worker uses can send phase 1's requests on this
 * machine, with no database, signing or logging around it.
 *
 *     cc -O2 -o bench/tmp/curl_client bench/curl_client.c -lcurl
 *     bench/tmp/curl_client BASE_URL BODY_FILE REQUESTS [IN_FLIGHT]
 *
 * POSTs the body in BODY_FILE REQUESTS times to BASE_URL/c1 ... BASE_URL/c10
 * in turn (ten endpoints, as phase 1), with headers shaped like the
 * worker's (webhook-id, webhook-timestamp, webhook-signature, content type,
 * event type), at most IN_FLIGHT (default 512, webhook.max_in_flight's
 * default) at a time on one multi handle with keep-alive connections, and
 * easy handles reused as the worker reuses them.  Prints
 *
 *     requests <n> failed <f> seconds <s> cpu_us_per_request <c>
 *
 * where the CPU is this process's own (user and system), not the receiver's.
 * Exits 1 on a usage or setup error.
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define N_URLS 10
#define MAX_IN_FLIGHT 4096

/* Discard the response body: the status code is all that is checked. */
static size_t
discard(char *data, size_t size, size_t n, void *arg)
{
	(void) data;
	(void) arg;
	return size * n;
}

/* Seconds on the monotonic clock. */
static double
now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

/* This process's CPU time so far, user and system, in seconds. */
static double
cpu_s(void)
{
	struct rusage r;

	getrusage(RUSAGE_SELF, &r);
	return r.ru_utime.tv_sec + r.ru_stime.tv_sec + (r.ru_utime.tv_usec + r.ru_stime.tv_usec) / 1e6;
}

/* The whole file, NUL-terminated, or NULL. */
static char *
read_file(const char *path)
{
	FILE	   *f = fopen(path, "rb");
	char	   *buf;
	long		len;

	if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0)
		return NULL;
	buf = malloc(len + 1);
	if (buf == NULL || fread(buf, 1, len, f) != (size_t) len)
		return NULL;
	buf[len] = '\0';
	fclose(f);
	return buf;
}

/* Set up request i on easy handle e: its URL, body and headers. */
static void
prepare(CURL *e, int i, const char *base, const char *body)
{
	char		url[512];
	char		id[96];
	struct curl_slist *h = NULL;

	snprintf(url, sizeof(url), "%s/c%d", base, i % N_URLS + 1);
	snprintf(id, sizeof(id), "webhook-id: 01900000-0000-7000-8000-%012d", i);
	h = curl_slist_append(h, id);
	h = curl_slist_append(h, "webhook-timestamp: 1764784800");
	h = curl_slist_append(h, "webhook-signature: v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=");
	h = curl_slist_append(h, "Content-Type: application/json");
	h = curl_slist_append(h, "X-Webhook-Event-Type: bench.tp");
	h = curl_slist_append(h, "Expect:");
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(e, CURLOPT_PRIVATE, (char *) h);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
}

/* Take the finished transfers off the multi handle; returns how many. */
static int
collect(CURLM *multi, CURL **pool, int *n_pooled, int *failed)
{
	CURLMsg    *msg;
	int			queued;
	int			done = 0;

	while ((msg = curl_multi_info_read(multi, &queued)) != NULL)
	{
		CURL	   *e = msg->easy_handle;
		char	   *headers;
		long		code = 0;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(e, CURLINFO_PRIVATE, &headers);
		curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
		if (msg->data.result != CURLE_OK || code != 200)
			(*failed)++;
		curl_multi_remove_handle(multi, e);
		curl_slist_free_all((struct curl_slist *) headers);
		curl_easy_reset(e);
		pool[(*n_pooled)++] = e;
		done++;
	}
	return done;
}

int
main(int argc, char **argv)
{
	static CURL *pool[MAX_IN_FLIGHT];
	int			n_pooled = 0;
	int			total;
	int			in_flight;
	int			started = 0;
	int			done = 0;
	int			failed = 0;
	int			running;
	char	   *body;
	CURLM	   *multi;
	double		t0;
	double		c0;

	if (argc < 4 || (total = atoi(argv[3])) <= 0)
	{
		fprintf(stderr, "usage: %s BASE_URL BODY_FILE REQUESTS [IN_FLIGHT]\n", argv[0]);
		return 1;
	}
	in_flight = argc > 4 ? atoi(argv[4]) : 512;
	if (in_flight <= 0 || in_flight > MAX_IN_FLIGHT || (body = read_file(argv[2])) == NULL ||
		curl_global_init(CURL_GLOBAL_ALL) != CURLE_OK || (multi = curl_multi_init()) == NULL)
	{
		fprintf(stderr, "%s: bad IN_FLIGHT, unreadable BODY_FILE, or libcurl failed to start\n", argv[0]);
		return 1;
	}
	curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, (long) in_flight);
	t0 = now_s();
	c0 = cpu_s();
	while (done < total)
	{
		while (started < total && started - done < in_flight)
		{
			CURL	   *e = n_pooled > 0 ? pool[--n_pooled] : curl_easy_init();

			if (e == NULL)
				return 1;
			prepare(e, started++, argv[1], body);
			curl_multi_add_handle(multi, e);
		}
		curl_multi_perform(multi, &running);
		done += collect(multi, pool, &n_pooled, &failed);
		/* Wait for answers only when no request can be added. */
		if (done < total && (started == total || started - done >= in_flight))
			curl_multi_poll(multi, NULL, 0, 100, NULL);
	}
	printf("requests %d failed %d seconds %.3f cpu_us_per_request %.1f\n",
		   done, failed, now_s() - t0, (cpu_s() - c0) * 1e6 / done);
	return 0;
}
