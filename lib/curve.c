/* The cluster keypair of lib/curve.h, once per process. Fails closed:
 * with keys configured, every option that makes a socket CURVE is
 * checked, at startup on a scratch socket (curve_init) and on each real
 * socket before it is bound or connected. */
#include "lib/curve.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <zmq.h>

#include "lib/log.h"

static struct curve_keys curve_k;
static unsigned char curve_pub_bin[32];
static bool curve_is_on;

static bool
curve_line(FILE *f, char *out)
{
	char line[128];
	size_t n;

	if (fgets(line, sizeof(line), f) == NULL)
		return false;
	n = strcspn(line, "\r\n");
	if (n != CURVE_KEY_Z85)
		return false;
	memcpy(out, line, n);
	out[n] = '\0';
	return true;
}

/* Make sock a CURVE server or client with k. Returns 0, or -errno and the
 * name of the option libzmq refused in *what. */
static int
curve_apply(void *sock, const struct curve_keys *k, bool is_server,
	    const char **what)
{
	static const int one = 1;
	const struct {
		int opt;
		const char *name;
		const void *val;
		size_t len;
	} server[] = {
		{ ZMQ_CURVE_SERVER, "ZMQ_CURVE_SERVER", &one, sizeof(one) },
		{ ZMQ_CURVE_SECRETKEY, "ZMQ_CURVE_SECRETKEY", k->sec,
		  CURVE_KEY_Z85 },
		{ ZMQ_ZAP_DOMAIN, "ZMQ_ZAP_DOMAIN", CURVE_ZAP_DOMAIN,
		  sizeof(CURVE_ZAP_DOMAIN) - 1 },
	}, client[] = {
		{ ZMQ_CURVE_SERVERKEY, "ZMQ_CURVE_SERVERKEY", k->pub,
		  CURVE_KEY_Z85 },
		{ ZMQ_CURVE_PUBLICKEY, "ZMQ_CURVE_PUBLICKEY", k->pub,
		  CURVE_KEY_Z85 },
		{ ZMQ_CURVE_SECRETKEY, "ZMQ_CURVE_SECRETKEY", k->sec,
		  CURVE_KEY_Z85 },
	};
	size_t n = is_server ? sizeof(server) / sizeof(*server) :
			       sizeof(client) / sizeof(*client);

	for (size_t i = 0; i < n; i++) {
		int opt = is_server ? server[i].opt : client[i].opt;
		const void *val = is_server ? server[i].val : client[i].val;
		size_t len = is_server ? server[i].len : client[i].len;

		if (zmq_setsockopt(sock, opt, val, len) != 0) {
			int e = errno ? errno : EINVAL;

			*what = is_server ? server[i].name : client[i].name;
			return -e;
		}
	}
	return 0;
}

/* A scratch socket takes both roles with k: what every cluster socket
 * will be asked. Returns 0, or -1 with the cause in err. */
static int
curve_try(const char *path, const struct curve_keys *k, char *err,
	  size_t errlen)
{
	void *ctx = zmq_ctx_new();
	void *sock[2] = { NULL, NULL };
	const char *what = "zmq_socket";
	int rc = ctx ? 0 : -errno;

	for (int i = 0; i < 2 && rc == 0; i++) {
		sock[i] = zmq_socket(ctx, i == 0 ? ZMQ_ROUTER : ZMQ_DEALER);
		rc = sock[i] ? curve_apply(sock[i], k, i == 0, &what) : -errno;
	}
	for (int i = 0; i < 2; i++)
		if (sock[i])
			zmq_close(sock[i]);
	if (ctx)
		zmq_ctx_term(ctx);
	if (rc != 0) {
		snprintf(err, errlen, "%s: libzmq cannot set up CURVE with "
			 "these keys: %s failed: %s; refusing to run the "
			 "cluster links unencrypted", path, what,
			 zmq_strerror(-rc));
		return -1;
	}
	return 0;
}

int
curve_init(const char *path, char *err, size_t errlen)
{
	struct curve_keys k;
	char derived[CURVE_KEY_Z85 + 1];
	FILE *f;
	int major, minor, patch;
	bool ok;

	curve_is_on = false;
	if (path == NULL)
		return 0;
	if (!zmq_has("curve")) {
		zmq_version(&major, &minor, &patch);
		snprintf(err, errlen, "%s: this libzmq (%d.%d.%d) has no CURVE "
			 "support (zmq_has(\"curve\") is false): cannot "
			 "encrypt the cluster links, refusing to run them "
			 "unencrypted", path, major, minor, patch);
		return -1;
	}
	f = fopen(path, "r");
	if (f == NULL) {
		snprintf(err, errlen, "%s: cannot read the cluster keys", path);
		return -1;
	}
	ok = curve_line(f, k.pub) && curve_line(f, k.sec);
	fclose(f);
	if (!ok) {
		snprintf(err, errlen, "%s: expected two lines of 40 Z85 "
			 "characters (public, secret): see shoalctl keygen",
			 path);
		return -1;
	}
	/* libzmq is the judge of a key: ask it on a real socket */
	if (curve_try(path, &k, err, errlen) != 0)
		return -1;
	if (zmq_curve_public(derived, k.sec) != 0 ||
	    strcmp(derived, k.pub) != 0) {
		snprintf(err, errlen, "%s: the public key is not the secret "
			 "key's: see shoalctl keygen", path);
		return -1;
	}
	if (zmq_z85_decode(curve_pub_bin, k.pub) == NULL) {
		snprintf(err, errlen, "%s: the public key is not Z85", path);
		return -1;
	}
	curve_k = k;
	memset(&k, 0, sizeof(k));
	curve_is_on = true;
	return 0;
}

bool
curve_on(void)
{
	return curve_is_on;
}

static int
curve_setup(void *sock, bool is_server)
{
	const char *what = "";
	int rc;

	if (!curve_is_on)
		return 0;
	rc = curve_apply(sock, &curve_k, is_server, &what);
	if (rc != 0)
		log_error("zmq op=setsockopt option=%s role=%s error=\"%s\" "
			  "note=\"socket not used: it would be unencrypted\"",
			  what, is_server ? "server" : "client",
			  zmq_strerror(-rc));
	return rc;
}

int
curve_server(void *sock)
{
	return curve_setup(sock, true);
}

int
curve_client(void *sock)
{
	return curve_setup(sock, false);
}

bool
curve_client_allowed(const void *key, size_t len)
{
	return curve_is_on && len == sizeof(curve_pub_bin) &&
	       memcmp(key, curve_pub_bin, len) == 0;
}

int
curve_generate(struct curve_keys *k)
{
	return zmq_curve_keypair(k->pub, k->sec) == 0 ? 0 : -1;
}
