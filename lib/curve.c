/* The cluster keypair of lib/curve.h, once per process. */
#include "lib/curve.h"

#include <stdio.h>
#include <string.h>
#include <zmq.h>

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

int
curve_init(const char *path, char *err, size_t errlen)
{
	FILE *f;
	unsigned char sec_bin[32];

	curve_is_on = false;
	if (path == NULL)
		return 0;
	f = fopen(path, "r");
	if (f == NULL) {
		snprintf(err, errlen, "%s: cannot read the cluster keys", path);
		return -1;
	}
	if (!curve_line(f, curve_k.pub) || !curve_line(f, curve_k.sec) ||
	    zmq_z85_decode(curve_pub_bin, curve_k.pub) == NULL ||
	    zmq_z85_decode(sec_bin, curve_k.sec) == NULL) {
		fclose(f);
		snprintf(err, errlen, "%s: expected two lines of 40 Z85 "
			 "characters (public, secret): see shoalctl keygen",
			 path);
		return -1;
	}
	fclose(f);
	memset(sec_bin, 0, sizeof(sec_bin));
	curve_is_on = true;
	return 0;
}

bool
curve_on(void)
{
	return curve_is_on;
}

void
curve_server(void *sock)
{
	int one = 1;

	if (!curve_is_on)
		return;
	zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof(one));
	zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, curve_k.sec, CURVE_KEY_Z85);
}

void
curve_client(void *sock)
{
	if (!curve_is_on)
		return;
	zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, curve_k.pub, CURVE_KEY_Z85);
	zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, curve_k.pub, CURVE_KEY_Z85);
	zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, curve_k.sec, CURVE_KEY_Z85);
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
