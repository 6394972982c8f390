/*
 * schedule_test.c
 *      Standalone unit test for src/schedule.c (no PostgreSQL needed): the
 *      error class table, outcomes, retry delays, back-off, sleeps and token
 *      buckets.  It also reads the .c files of src to check that every
 *      error class the C code produces (an ERROR_CLASS_* name) is in the
 *      table, and that no code writes a class name as a string of its own.
 *
 *      make -C test/unit check        # gcc
 *      make -C test/unit check-asan   # clang, ASan + UBSan
 */
#include "../../src/schedule.h"

#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SRC_DIR "../../src"

static int	failures = 0;
static int	checks = 0;

static void
expect(const char *what, bool ok)
{
	checks++;
	if (!ok)
	{
		failures++;
		printf("FAIL %s\n", what);
	}
}

static void
expect_int(const char *what, long long got, long long want)
{
	checks++;
	if (got != want)
	{
		failures++;
		printf("FAIL %s: got %lld, want %lld\n", what, got, want);
	}
}

/* Every class by its C name, as the producers spell it. */
#define CLASS(x) {ERROR_CLASS_##x, #x}
static const struct
{
	WebhookErrorClass klass;
	const char *ident;
}			classes[] = {

	CLASS(HTTP), CLASS(TIMEOUT), CLASS(CONNECT), CLASS(DNS), CLASS(TLS),
	CLASS(CONNECTION), CLASS(PROTOCOL), CLASS(BLOCKED), CLASS(INVALID_URL),
	CLASS(TOO_LARGE), CLASS(SECRET), CLASS(INVALID_HEADER), CLASS(TRANSFORM),
	CLASS(INTERNAL), CLASS(OAUTH),
};
#define N_CLASSES (sizeof(classes) / sizeof(classes[0]))

/* The log's name of a C name: lower case. */
static void
lower(const char *ident, char *out, size_t size)
{
	size_t		i;

	for (i = 0; ident[i] && i + 1 < size; i++)
		out[i] = (char) tolower((unsigned char) ident[i]);
	out[i] = '\0';
}

/* The table: one named, explained entry per class, names unique. */
static void
test_table(void)
{
	expect_int("one C name per class", (long long) N_CLASSES, ERROR_CLASS_COUNT - 1);
	expect("success has no name", webhook_error_class_name(ERROR_CLASS_NONE) == NULL);
	expect("out of range has no name", webhook_error_class_name(ERROR_CLASS_COUNT) == NULL);
	for (size_t i = 0; i < N_CLASSES; i++)
	{
		char		want[64];
		const char *name = webhook_error_class_name(classes[i].klass);
		const char *meaning = webhook_error_class_table[classes[i].klass].meaning;

		lower(classes[i].ident, want, sizeof(want));
		expect(classes[i].ident, name != NULL && strcmp(name, want) == 0);
		expect("meaning given", meaning != NULL && strlen(meaning) > 10);
		expect("name found back", webhook_error_class_from_name(want) == classes[i].klass);
	}
	expect("unknown name", webhook_error_class_from_name("nonsense") == ERROR_CLASS_NONE);
	expect("NULL name", webhook_error_class_from_name(NULL) == ERROR_CLASS_NONE);
}

/* Is ERROR_CLASS_<ident> one of the classes (or the two markers)? */
static bool
known_ident(const char *ident)
{
	if (strcmp(ident, "NONE") == 0 || strcmp(ident, "COUNT") == 0)
		return true;
	for (size_t i = 0; i < N_CLASSES; i++)
		if (strcmp(classes[i].ident, ident) == 0)
			return true;
	return false;
}

/* Check one source file's uses of error classes. */
static void
scan_source(const char *path)
{
	FILE	   *f = fopen(path, "r");
	char		line[4096];
	int			lineno = 0;

	if (f == NULL)
	{
		expect(path, false);
		return;
	}
	while (fgets(line, sizeof(line), f) != NULL)
	{
		char	   *p = line;
		char		what[4200];

		lineno++;
		snprintf(what, sizeof(what), "%s:%d: a class name written as a string", path, lineno);
		expect(what, strstr(line, "error_class = \"") == NULL &&
			   strstr(line, "error_class ? \"") == NULL);
		while ((p = strstr(p, "ERROR_CLASS_")) != NULL)
		{
			char		ident[64];
			size_t		n = 0;

			p += strlen("ERROR_CLASS_");
			while ((isupper((unsigned char) p[n]) || p[n] == '_') && n + 1 < sizeof(ident))
			{
				ident[n] = p[n];
				n++;
			}
			ident[n] = '\0';
			snprintf(what, sizeof(what), "%s:%d: ERROR_CLASS_%s is in the table", path, lineno, ident);
			expect(what, n > 0 && known_ident(ident));
			p += n;
		}
	}
	fclose(f);
}

/* Every class the C code produces, in every source file, is in the table. */
static void
test_sources(void)
{
	DIR		   *dir = opendir(SRC_DIR);
	struct dirent *e;
	int			scanned = 0;

	expect("src readable", dir != NULL);
	if (dir == NULL)
		return;
	while ((e = readdir(dir)) != NULL)
	{
		size_t		len = strlen(e->d_name);
		char		path[512];

		if (len < 3 || strcmp(e->d_name + len - 2, ".c") != 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", SRC_DIR, e->d_name);
		scan_source(path);
		scanned++;
	}
	closedir(dir);
	expect("sources scanned", scanned > 5);
}

/* What an attempt means for its delivery. */
static void
test_outcome(void)
{
	ScheduleOutcome o;

	o = schedule_outcome(ERROR_CLASS_NONE, 200, 10);
	expect("2xx succeeds", o.status == DELIVERY_SUCCEEDED && !o.deactivate_endpoint);
	o = schedule_outcome(ERROR_CLASS_HTTP, 500, 10);
	expect("500 retried", o.status == DELIVERY_PENDING);
	o = schedule_outcome(ERROR_CLASS_HTTP, 500, -1);
	expect("500 without retries left fails", o.status == DELIVERY_FAILED);
	o = schedule_outcome(ERROR_CLASS_HTTP, 410, 10);
	expect("410 fails and deactivates", o.status == DELIVERY_FAILED && o.deactivate_endpoint);
	o = schedule_outcome(ERROR_CLASS_TIMEOUT, 0, 10);
	expect("timeout retried", o.status == DELIVERY_PENDING);
	o = schedule_outcome(ERROR_CLASS_TOO_LARGE, 0, 10);
	expect("too_large retried", o.status == DELIVERY_PENDING);
	o = schedule_outcome(ERROR_CLASS_INTERNAL, 0, 10);
	expect("internal retried", o.status == DELIVERY_PENDING);
	o = schedule_outcome(ERROR_CLASS_CONNECTION, 0, 10);
	expect("connection retried", o.status == DELIVERY_PENDING);
	{
		WebhookErrorClass permanent[] = {ERROR_CLASS_BLOCKED, ERROR_CLASS_INVALID_URL,
		ERROR_CLASS_SECRET, ERROR_CLASS_INVALID_HEADER, ERROR_CLASS_TRANSFORM};

		for (size_t i = 0; i < sizeof(permanent) / sizeof(permanent[0]); i++)
		{
			o = schedule_outcome(permanent[i], 0, 10);
			expect(webhook_error_class_name(permanent[i]),
				   o.status == DELIVERY_FAILED && !o.deactivate_endpoint);
		}
	}
}

/* The delay before a retry: scale, jitter, Retry-After. */
static void
test_retry_delay(void)
{
	expect_int("jitter 0: 80%", schedule_retry_delay_us(10, 1.0, 0.0, 500, -1), 8000000);
	expect_int("jitter 0.5: 100%", schedule_retry_delay_us(10, 1.0, 0.5, 500, -1), 10000000);
	expect_int("scaled", schedule_retry_delay_us(10, 0.01, 0.5, 500, -1), 100000);
	expect_int("Retry-After on 429", schedule_retry_delay_us(10, 1.0, 0.5, 429, 60), 60000000);
	expect_int("Retry-After on 503", schedule_retry_delay_us(10, 1.0, 0.5, 503, 60), 60000000);
	expect_int("short Retry-After", schedule_retry_delay_us(10, 1.0, 0.5, 429, 1), 10000000);
	expect_int("Retry-After ignored on 500", schedule_retry_delay_us(10, 1.0, 0.5, 500, 60), 10000000);
	expect_int("Retry-After up to a day", schedule_retry_delay_us(0, 1.0, 0.5, 429, 1000000),
			   (long long) 86400 * 1000000);
}

/* Back-off, sleeps, earliest of two times. */
static void
test_times(void)
{
	expect_int("first back-off", schedule_error_backoff_ms(0), 1000);
	expect_int("second back-off", schedule_error_backoff_ms(1), 2000);
	expect_int("fifth back-off", schedule_error_backoff_ms(4), 16000);
	expect_int("back-off capped", schedule_error_backoff_ms(5), 30000);
	expect_int("back-off stays capped", schedule_error_backoff_ms(1000), 30000);
	expect_int("past: no wait", schedule_ms_until(5000000, 4000000), 0);
	expect_int("now: no wait", schedule_ms_until(5000000, 5000000), 0);
	expect_int("rounded up", schedule_ms_until(0, 1500), 2);
	expect_int("at most an hour", schedule_ms_until(0, INT64_C(10) * 3600 * 1000000), 3600 * 1000L);
	expect_int("earliest, none", schedule_earliest(0, 0), 0);
	expect_int("earliest, one", schedule_earliest(0, 7), 7);
	expect_int("earliest, other", schedule_earliest(7, 0), 7);
	expect_int("earliest, both", schedule_earliest(9, 7), 7);
	/* After a claim that began at 100 and took nothing; now is 150. */
	expect_int("next due: none", schedule_next_due(0, 100, 0, 150, 1000), 0);
	expect_int("next due: later, slept until", schedule_next_due(300, 100, 0, 150, 1000), 300);
	expect_int("next due: due at the claim yet not taken, rechecked later",
			   schedule_next_due(90, 100, 0, 150, 1000), 1150);
	expect_int("next due: came due after the claim began, claimed at once",
			   schedule_next_due(120, 100, 0, 150, 1000), 120);
	expect_int("next due: the claim took some, no recheck", schedule_next_due(90, 100, 3, 150, 1000), 90);
}

/*
 * The read's page (schedule_read_page): as many events as make the rows
 * the worker has room for, rounded down, within [1, batch]; and the mean
 * of rows per event it sizes by.
 */
static void
test_read_page(void)
{
	double		mean = 1.0;

	expect_int("read page: one row an event, the room", schedule_read_page(100, 1.0, 500), 100);
	expect_int("read page: ten rows an event, a tenth", schedule_read_page(100, 10.0, 500), 10);
	expect_int("read page: rounded down, no row left over", schedule_read_page(109, 10.0, 500), 10);
	expect_int("read page: a mean just under a whole number makes no row too many",
			   schedule_read_page(500, 9.97, 500), 50);
	expect_int("read page: never more than a batch", schedule_read_page(512, 1.0, 500), 500);
	expect_int("read page: events that make no rows, a room's worth", schedule_read_page(64, 0.0, 500), 64);
	expect_int("read page: at least one event", schedule_read_page(1, 1000.0, 500), 1);

	expect("rows per event: a read of none says nothing", schedule_rows_per_event(3.0, 0, 0) == 3.0);
	for (int i = 0; i < 20; i++)
		mean = schedule_rows_per_event(mean, 50, 500);
	expect("rows per event: follows ten endpoints within a few reads", mean > 9.9 && mean <= 10.0);
	mean = schedule_rows_per_event(mean, 50, 0);
	expect("rows per event: falls when events match nothing", mean < 8.0);
}

/*
 * Claims after a drained queue wait longer only while commits arrive fast:
 * a steady stream of several events per read, not one burst.
 */
static void
test_claim_delay(void)
{
	double		mean = 1.0;
	int			turns = 0;

	expect_int("claim delay: one event a read, a quiet queue keeps its latency",
			   schedule_claim_delay_ms(1.0), SCHEDULE_QUIET_DELAY_MS);
	expect_int("claim delay: several events a read, commits gather",
			   schedule_claim_delay_ms(SCHEDULE_BUSY_EVENTS), SCHEDULE_BUSY_DELAY_MS);
	expect_int("claim delay: just below busy", schedule_claim_delay_ms(SCHEDULE_BUSY_EVENTS - 0.01),
			   SCHEDULE_QUIET_DELAY_MS);

	/* One read of 12 events behind a slow turn, among reads of one. */
	mean = schedule_events_per_read(mean, 12);
	expect_int("claim delay: one burst stays quiet", schedule_claim_delay_ms(mean), SCHEDULE_QUIET_DELAY_MS);
	for (int i = 0; i < 20; i++)
		mean = schedule_events_per_read(mean, 1);
	expect("claim delay: back near one event a read", mean > 0.99 && mean < 1.2);

	/* A steady stream of 5 events a read turns busy within a few turns. */
	while (schedule_claim_delay_ms(mean) == SCHEDULE_QUIET_DELAY_MS && turns < 1000)
	{
		mean = schedule_events_per_read(mean, 5);
		turns++;
	}
	expect("claim delay: a steady stream turns busy", turns > 1 && turns < 20);
	/* Once the stream has settled, quiet again a few reads of one after it. */
	for (int i = 0; i < 100; i++)
		mean = schedule_events_per_read(mean, 5);
	turns = 0;
	while (schedule_claim_delay_ms(mean) == SCHEDULE_BUSY_DELAY_MS && turns < 1000)
	{
		mean = schedule_events_per_read(mean, 1);
		turns++;
	}
	expect("claim delay: quiet again a few reads after the stream stops", turns >= 3 && turns <= 10);

	/*
	 * The last pages of bulk sends count as bursts, not as a stream: a read
	 * counts as twice the busy level at most.
	 */
	mean = 1.0;
	for (int i = 0; i < 3; i++)
		mean = schedule_events_per_read(mean, 1000);
	expect_int("claim delay: three bulk pages stay quiet", schedule_claim_delay_ms(mean), SCHEDULE_QUIET_DELAY_MS);
	mean = schedule_events_per_read(mean, 1000);
	expect_int("claim delay: a fourth turns busy", schedule_claim_delay_ms(mean), SCHEDULE_BUSY_DELAY_MS);
}

/*
 * Gathering outcomes to record (schedule_record_at): successes that free
 * nothing wait for the ones after them, up to the record delay from the
 * first (SCHEDULE_RECORD_GATHER_MS by default, none when 0); an outcome
 * that may free a delivery, or a full batch, goes at once.
 */
static void
test_record_gathering(void)
{
	int64_t		gather_us = SCHEDULE_RECORD_GATHER_MS * INT64_C(1000);
	int64_t		at;

	at = schedule_record_at(0, 1000000, 1, 500, SCHEDULE_RECORD_GATHER_MS, false);
	expect_int("record: the first success starts a gathering", at, 1000000 + gather_us);
	expect_int("record: later outcomes keep its end",
			   schedule_record_at(at, 1000000 + gather_us / 2, 40, 500, SCHEDULE_RECORD_GATHER_MS, false), at);
	expect_int("record: at its end, now", schedule_record_at(at, at, 40, 500, SCHEDULE_RECORD_GATHER_MS, false), 0);
	expect_int("record: a clock past its end, now", schedule_record_at(at, at + 1, 40, 500, SCHEDULE_RECORD_GATHER_MS, false), 0);
	expect_int("record: a clock set back ends the gathering",
			   schedule_record_at(at, 1000000 - 1, 40, 500, SCHEDULE_RECORD_GATHER_MS, false), 0);
	expect_int("record: a full batch goes at once", schedule_record_at(at, 1000000, 500, 500, SCHEDULE_RECORD_GATHER_MS, false), 0);
	expect_int("record: an outcome that may free a claim goes at once",
			   schedule_record_at(0, 1000000, 1, 500, SCHEDULE_RECORD_GATHER_MS, true), 0);
	expect_int("record: ... also within a gathering", schedule_record_at(at, 1000000, 3, 500, SCHEDULE_RECORD_GATHER_MS, true), 0);
	expect_int("record: no gathering when its delay is 0", schedule_record_at(0, 1000000, 1, 500, 0, false), 0);
	expect_int("record: a longer delay ends later",
			   schedule_record_at(0, 1000000, 1, 500, 60000, false), 1000000 + INT64_C(60000000));
}

/* Token buckets of rate-limited endpoints. */
static void
test_buckets(void)
{
	TokenBucket b = {2.0, 0.0, 0};
	int64_t		wake;

	expect("burst at least one", schedule_bucket_burst(0.5) == 1.0);
	expect("burst a second's worth", schedule_bucket_burst(5.0) == 5.0);
	expect("empty after a quarter second", schedule_refill(&b, 250000, &wake));
	expect("half a token", b.tokens == 0.5);
	expect_int("wakes when a token is there", wake, 500000 + 1000);
	expect("full after ten seconds", !schedule_refill(&b, 10250000, &wake));
	expect("capped at the burst", b.tokens == 2.0);
	expect_int("no wake when not empty", wake, 0);

	b = (TokenBucket)
	{
		0.0, 0.0, 0
	};
	expect("no limit: never empty", !schedule_refill(&b, 1000000, &wake));

	b = (TokenBucket)
	{
		0.0001, 0.0, 0
	};
	expect("slow limit: empty", schedule_refill(&b, 0, &wake));
	expect_int("waits at most an hour", wake, INT64_C(3600) * 1000000 + 1000);
}

int
main(void)
{
	test_table();
	test_sources();
	test_outcome();
	test_retry_delay();
	test_times();
	test_claim_delay();
	test_record_gathering();
	test_read_page();
	test_buckets();
	printf("%d checks, %d failures\n", checks, failures);
	return failures == 0 ? 0 : 1;
}
