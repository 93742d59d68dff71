/* The users file, the password checks and the failure table. Lookups are
 * linear in the users (a submission service has tens to thousands): fine
 * next to crypt(3), which costs milliseconds by design, and both run on a
 * worker thread, never on the loop.
 *
 * Threads: everything here runs on the loop thread except auth_job_work(),
 * which reads its job, the users snapshot the job holds a reference to
 * (never changed once loaded; auth_reload() makes a new one) and the dummy
 * hash (set once in auth_new()). The references are taken and dropped on
 * the loop thread only, so they need no atomics. */
#include "router/auth.h"

#include <crypt.h>
#include <openssl/evp.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lib/err.h"
#include "lib/log.h"
#include "lib/workq.h"
#include "lib/xmalloc.h"

#define AUTH_LINE_MAX 2048
#define AUTH_USERS_MAX 1000000
#define AUTH_CLIENTS_MAX 4096      /* failure table entries */
#define AUTH_DELAY_STEP_MS 500
#define AUTH_DELAY_MAX_MS 8000
#define AUTH_DECAY_S 60
#define AUTH_THREADS_MAX 4         /* hashing threads, at most one a CPU */
#define AUTH_QUEUE_MAX 64          /* checks waiting for a thread */
#define AUTH_THREAD_NICE 10        /* the loop thread goes first */
#define AUTH_BUSY_LOG_S 10         /* one busy warning per this many s */

struct auth_user {
	char *name;
	char *hash;
};

/* The users as one read of the file; shared by the checks under way. */
struct auth_users {
	unsigned refs;
	struct auth_user *v;
	size_t n;
};

struct auth_client {
	char addr[64];
	uint32_t failures;
	time_t last;
};

/* One password check, from auth_check_start() to its callback. */
struct auth_job {
	struct auth_job *next, *prev; /* a->jobs */
	struct auth *a;
	struct auth_users *users;     /* a reference */
	char client[64];
	char user[AUTH_USER_MAX + 1];
	char pass[AUTH_PASS_MAX + 1]; /* wiped once hashed */
	bool is_too_long;             /* user or pass: fail, no hash */
	bool is_ok;                   /* set by the worker */
	auth_done_fn *done;
	void *ctx, *arg;              /* arg NULL: forgotten */
};

struct auth {
	const struct config *cfg;
	struct auth_users *users;     /* the current file */
	struct auth_client *clients;
	size_t n_clients;
	char *dummy_hash;          /* for unknown users: same cost */
	struct workq *wq;
	struct auth_job *jobs;     /* started, callback not yet called */
	bool is_stopping;          /* auth_free(): no more callbacks */
	time_t busy_logged;
	unsigned busy_folded;
};

static void
auth_users_free(struct auth_user *u, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(u[i].name);
		free(u[i].hash);
	}
	free(u);
}

static struct auth_users *
auth_users_ref(struct auth_users *u)
{
	u->refs++;
	return u;
}

static void
auth_users_unref(struct auth_users *u)
{
	if (u == NULL || --u->refs > 0)
		return;
	auth_users_free(u->v, u->n);
	free(u);
}

/* Parse the file into *out (one reference). Returns 0 or SHOAL_E_CONFIG
 * (logged). */
static int
auth_load(const char *path, struct auth_users **out)
{
	FILE *f = fopen(path, "r");
	char line[AUTH_LINE_MAX];
	struct auth_user *u = NULL;
	size_t n = 0, cap = 0, lineno = 0, bytes = 0;

	if (f == NULL) {
		log_error_errno("auth file=%s event=open_failed", path);
		return SHOAL_E_CONFIG;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		size_t len = strlen(line);
		char *colon;

		lineno++;
		bytes += len;
		if (bytes > AUTH_FILE_MAX || n >= AUTH_USERS_MAX ||
		    (len == sizeof(line) - 1 && line[len - 1] != '\n')) {
			log_error("auth file=%s line=%zu error=\"file or line "
				  "too long\"",
				  path, lineno);
			goto fail;
		}
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = '\0';
		if (len == 0 || line[0] == '#')
			continue;
		colon = strchr(line, ':');
		if (colon == NULL || colon == line ||
		    (size_t)(colon - line) > AUTH_USER_MAX ||
		    colon[1] != '$') {
			log_error("auth file=%s line=%zu error=\"expected "
				  "user:crypt-hash\"",
				  path, lineno);
			goto fail;
		}
		*colon = '\0';
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			u = xrealloc(u, cap * sizeof(*u));
		}
		u[n].name = xstrdup(line);
		u[n].hash = xstrdup(colon + 1);
		n++;
	}
	fclose(f);
	*out = xcalloc(1, sizeof(**out));
	(*out)->refs = 1;
	(*out)->v = u;
	(*out)->n = n;
	return 0;
fail:
	fclose(f);
	auth_users_free(u, n);
	return SHOAL_E_CONFIG;
}

struct auth *
auth_new(const struct config *cfg, int *err)
{
	struct auth *a;
	char salt[CRYPT_GENSALT_OUTPUT_SIZE];
	struct crypt_data *cd;

	*err = 0;
	if (cfg->router.users_file == NULL)
		return NULL;
	a = xcalloc(1, sizeof(*a));
	a->cfg = cfg;
	*err = auth_load(cfg->router.users_file, &a->users);
	if (*err != 0) {
		free(a);
		return NULL;
	}
	a->clients = xcalloc(AUTH_CLIENTS_MAX, sizeof(*a->clients));
	cd = xcalloc(1, sizeof(*cd));	/* 32 KiB: not on the stack */
	if (crypt_gensalt_rn("$y$", 0, NULL, 0, salt, sizeof(salt)) != NULL &&
	    crypt_r("not a password", salt, cd) != NULL)
		a->dummy_hash = xstrdup(cd->output);
	free(cd);
	log_info("auth file=%s event=loaded users=%zu",
		 cfg->router.users_file, a->users->n);
	return a;
}

int
auth_start(struct auth *a, struct event_base *base)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned threads = cpus < 1 ? 1 :
			   cpus > AUTH_THREADS_MAX ? AUTH_THREADS_MAX :
						     (unsigned)cpus;
	int rc = workq_new(base, threads, AUTH_QUEUE_MAX, AUTH_THREAD_NICE,
			   &a->wq);

	if (rc == 0)
		log_info("auth event=started threads=%u queue=%u", threads,
			 AUTH_QUEUE_MAX);
	return rc;
}

void
auth_free(struct auth *a)
{
	if (a == NULL)
		return;
	/* the checks still held come back once more, to be freed */
	a->is_stopping = true;
	workq_free(a->wq);
	SHOAL_ASSERT(a->jobs == NULL);
	auth_users_unref(a->users);	/* taken in auth_new()/auth_reload() */
	free(a->clients);
	free(a->dummy_hash);
	free(a);
}

int
auth_reload(struct auth *a)
{
	struct auth_users *u;
	int rc = auth_load(a->cfg->router.users_file, &u);

	if (rc != 0) {
		log_warn("auth event=reload_failed note=\"keeping %zu users\"",
			 a->users->n);
		return rc;
	}
	auth_users_unref(a->users);	/* taken in auth_new()/auth_reload() */
	a->users = u;
	log_info("auth event=reloaded users=%zu", u->n);
	return 0;
}

/* Compare without an early exit. */
static bool
auth_equal(const char *x, const char *y)
{
	size_t lx = strlen(x), ly = strlen(y);
	unsigned char d = lx != ly;

	for (size_t i = 0; i < lx && i < ly; i++)
		d |= (unsigned char)(x[i] ^ y[i]);
	return d == 0;
}

/* Whether user/pass is a valid pair of u. Costs one crypt(3) even for an
 * unknown user. On a worker thread. */
static bool
auth_verify(const struct auth_users *u, const char *dummy_hash,
	    const char *user, const char *pass)
{
	const char *hash = dummy_hash;
	struct crypt_data *cd;
	bool ok = false, known = false;

	for (size_t i = 0; i < u->n; i++)
		if (strcmp(u->v[i].name, user) == 0) {
			hash = u->v[i].hash;
			known = true;
			break;
		}
	if (hash == NULL)
		return false;
	cd = xcalloc(1, sizeof(*cd));	/* 32 KiB: not on the stack */
	if (crypt_r(pass, hash, cd) != NULL && cd->output[0] != '*')
		ok = known && auth_equal(cd->output, hash);
	explicit_bzero(cd, sizeof(*cd));
	free(cd);
	return ok;
}

/* On a worker thread. */
static void
auth_job_work(void *arg)
{
	struct auth_job *j = arg;

	if (!j->is_too_long)
		j->is_ok = auth_verify(j->users, j->a->dummy_hash, j->user,
				       j->pass);
	explicit_bzero(j->pass, sizeof(j->pass));
}

/* Back on the loop thread: count a failure, tell whoever waits. */
static void
auth_job_done(void *arg, int status)
{
	struct auth_job *j = arg;
	struct auth *a = j->a;
	struct auth_result r = { .is_ok = status == 0 && j->is_ok,
				 .client = j->client,
				 .user = j->user };

	if (j->prev)
		j->prev->next = j->next;
	else
		a->jobs = j->next;
	if (j->next)
		j->next->prev = j->prev;
	if (!a->is_stopping) {
		if (!r.is_ok)
			r.delay_ms = auth_failed(a, j->client);
		j->done(j->ctx, j->arg, &r);
	}
	auth_users_unref(j->users);	/* taken in auth_check_start() */
	explicit_bzero(j, sizeof(*j));
	free(j);
}

int
auth_check_start(struct auth *a, const char *client, const char *user,
		 const char *pass, auth_done_fn *done, void *ctx, void *arg)
{
	struct auth_job *j;
	int rc;

	SHOAL_ASSERT(a->wq != NULL);
	j = xcalloc(1, sizeof(*j));
	j->a = a;
	j->done = done;
	j->ctx = ctx;
	j->arg = arg;
	snprintf(j->client, sizeof(j->client), "%s", client);
	j->is_too_long = strlen(user) >= sizeof(j->user) ||
			 strlen(pass) >= sizeof(j->pass);
	if (!j->is_too_long) {
		memcpy(j->user, user, strlen(user) + 1);
		memcpy(j->pass, pass, strlen(pass) + 1);
	}
	j->users = auth_users_ref(a->users);
	rc = workq_submit(a->wq, j, auth_job_work, auth_job_done);
	if (rc != 0) {
		time_t now = time(NULL);

		if (now - a->busy_logged >= AUTH_BUSY_LOG_S) {
			log_warn("auth event=busy queued=%u folded=%u "
				 "note=\"answering 454 until a thread is "
				 "free\"",
				 AUTH_QUEUE_MAX, a->busy_folded);
			a->busy_logged = now;
			a->busy_folded = 0;
		} else {
			a->busy_folded++;
		}
		auth_users_unref(j->users);	/* taken just above */
		explicit_bzero(j, sizeof(*j));
		free(j);
		return rc;
	}
	j->next = a->jobs;
	if (a->jobs)
		a->jobs->prev = j;
	a->jobs = j;
	return 0;
}

void
auth_check_forget(struct auth *a, const void *arg)
{
	for (struct auth_job *j = a->jobs; j != NULL; j = j->next)
		if (j->arg == arg)
			j->arg = NULL;
}

uint32_t
auth_failed(struct auth *a, const char *client)
{
	time_t now = time(NULL);
	struct auth_client *c = NULL, *oldest = NULL;
	uint32_t delay;

	for (size_t i = 0; i < a->n_clients; i++) {
		if (strcmp(a->clients[i].addr, client) == 0) {
			c = &a->clients[i];
			break;
		}
		if (oldest == NULL || a->clients[i].last < oldest->last)
			oldest = &a->clients[i];
	}
	if (c == NULL) {
		c = a->n_clients < AUTH_CLIENTS_MAX ? &a->clients[a->n_clients++] :
						      oldest;
		memset(c, 0, sizeof(*c));
		snprintf(c->addr, sizeof(c->addr), "%s", client);
	} else if (now > c->last) {
		uint64_t decay = (uint64_t)(now - c->last) / AUTH_DECAY_S;

		c->failures = decay >= c->failures ? 0 :
						     c->failures - (uint32_t)decay;
	}
	c->failures++;
	c->last = now;
	delay = c->failures * AUTH_DELAY_STEP_MS;
	return delay > AUTH_DELAY_MAX_MS ? AUTH_DELAY_MAX_MS : delay;
}

bool
auth_offered(const struct auth *a, const struct cfg_listen *ls, bool is_tls,
	     const char *client)
{
	bool is_loopback = strncmp(client, "127.", 4) == 0 ||
			   strcmp(client, "::1") == 0;

	if (a == NULL || ls->auth == CFG_AUTH_NONE)
		return false;
	return is_tls || (ls->auth_plaintext && is_loopback);
}

/* Strict base64 into out (NUL-terminated). Returns the decoded length, or
 * -1 for anything that is not base64 of at most max octets. */
int
auth_b64_decode(const char *in, size_t len, char *out, size_t max)
{
	unsigned char *tmp;
	size_t pad = 0;
	int n;

	if (len == 0) {
		out[0] = '\0';
		return 0;
	}
	if (len % 4 != 0 || len / 4 * 3 > max)
		return -1;
	if (in[len - 1] == '=')
		pad++;
	if (len >= 2 && in[len - 2] == '=')
		pad++;
	tmp = malloc(len / 4 * 3 + 1);
	if (tmp == NULL)
		return -1;
	n = EVP_DecodeBlock(tmp, (const unsigned char *)in, (int)len);
	if (n < 0 || (size_t)n < pad) {
		free(tmp);
		return -1;
	}
	n -= (int)pad;
	memcpy(out, tmp, (size_t)n);
	out[n] = '\0';
	free(tmp);
	return n;
}
