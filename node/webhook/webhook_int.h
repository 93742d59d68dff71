/* What webhook.c (config, writing, status) and webhook_send.c (the
 * senders) share. Nothing outside node/webhook/ includes this. */
#ifndef SHOAL_NODE_WEBHOOK_INT_H
#define SHOAL_NODE_WEBHOOK_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/qid.h"
#include "node/store/store.h"
#include "node/webhook/webhook.h"

struct event;
struct http_call;
struct http_client;

#define WEBHOOK_ERROR_MAX 200 /* last error text kept, escaped */
#define WEBHOOK_RESP_KEEP 256 /* response body bytes kept for the error */

/* One configured webhook and its sender. */
struct webhook_hook {
	struct webhooks *wh;
	const struct cfg_webhook *cfg;
	size_t index;
	char tag[STORE_WHEV_HOOK_LEN + 1]; /* its digits in store keys */
	char *url_shown;                /* the URL, a password masked */
	uint32_t mask;                  /* 1 << webhook_type wanted */
	struct event *timer;            /* the next round */
	uint64_t timer_at_ms;           /* when it fires (monotonic), 0 */
	bool is_busy;                   /* a POST or its deletion runs */
	struct http_call *call;
	char (*keys)[STORE_WHEV_KEY_MAX]; /* the batch in flight */
	size_t n_keys;
	bool was_full;                  /* it filled a batch: more wait */
	char cursor[STORE_WHEV_KEY_MAX]; /* walk on after this ("" start) */
	uint64_t pending_hint;          /* events written since a round */
	uint32_t failures;              /* failed POSTs in a row */
	uint64_t retry_at_ms;           /* monotonic; 0 = no backoff */
	/* counters since start */
	uint64_t sent, dropped, posts_ok, posts_failed;
	uint64_t last_success, last_failure; /* unix seconds */
	char last_error[WEBHOOK_ERROR_MAX];
	uint64_t drop_logged_ms;        /* drops: one log line per 10 s */
	uint64_t drops_unlogged;
};

struct webhooks {
	struct webhooks_deps d;
	struct http_client *http;
	struct qid_gen ids;
	struct webhook_hook hooks[WEBHOOK_MAX];
	size_t n;
};

/* webhook_send.c: start and stop a webhook's sender; wake it after
 * `written` new events. */
void webhook_send_start(struct webhook_hook *h);
void webhook_send_stop(struct webhook_hook *h);
void webhook_send_kick(struct webhook_hook *h, uint64_t written);

#endif
