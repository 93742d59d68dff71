/* The users file and the failure table. Lookups are linear in the users
 * (a submission service has tens to thousands): fine next to crypt(3),
 * which costs milliseconds by design. */
#include "router/auth.h"

#include <crypt.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/err.h"
#include "lib/log.h"
#include "lib/xmalloc.h"

#define AUTH_LINE_MAX 2048
#define AUTH_USERS_MAX 1000000
#define AUTH_CLIENTS_MAX 4096      /* failure table entries */
#define AUTH_DELAY_STEP_MS 500
#define AUTH_DELAY_MAX_MS 8000
#define AUTH_DECAY_S 60

struct auth_user {
	char *name;
	char *hash;
};

struct auth_client {
	char addr[64];
	uint32_t failures;
	time_t last;
};

struct auth {
	const struct config *cfg;
	struct auth_user *users;
	size_t n_users;
	struct auth_client *clients;
	size_t n_clients;
	char *dummy_hash;          /* for unknown users: same cost */
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

/* Parse the file into *out. Returns 0 or SHOAL_E_CONFIG (logged). */
static int
auth_load(const char *path, struct auth_user **out, size_t *n_out)
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
	*out = u;
	*n_out = n;
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
	*err = auth_load(cfg->router.users_file, &a->users, &a->n_users);
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
		 cfg->router.users_file, a->n_users);
	return a;
}

void
auth_free(struct auth *a)
{
	if (a == NULL)
		return;
	auth_users_free(a->users, a->n_users);
	free(a->clients);
	free(a->dummy_hash);
	free(a);
}

int
auth_reload(struct auth *a)
{
	struct auth_user *u;
	size_t n;
	int rc = auth_load(a->cfg->router.users_file, &u, &n);

	if (rc != 0) {
		log_warn("auth event=reload_failed note=\"keeping %zu users\"",
			 a->n_users);
		return rc;
	}
	auth_users_free(a->users, a->n_users);
	a->users = u;
	a->n_users = n;
	log_info("auth event=reloaded users=%zu", n);
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

bool
auth_check(const struct auth *a, const char *user, const char *pass)
{
	const char *hash = a->dummy_hash;
	struct crypt_data *cd;
	bool ok = false, known = false;

	if (strnlen(user, AUTH_USER_MAX + 1) > AUTH_USER_MAX ||
	    strnlen(pass, AUTH_PASS_MAX + 1) > AUTH_PASS_MAX)
		return false;
	for (size_t i = 0; i < a->n_users; i++)
		if (strcmp(a->users[i].name, user) == 0) {
			hash = a->users[i].hash;
			known = true;
			break;
		}
	if (hash == NULL)
		return false;
	cd = xcalloc(1, sizeof(*cd));	/* 32 KiB: not on the stack */
	if (crypt_r(pass, hash, cd) != NULL && cd->output[0] != '*')
		ok = known && auth_equal(cd->output, hash);
	free(cd);
	return ok;
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
