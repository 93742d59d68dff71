/* shoalctl keygen FILE: a new cluster keypair for CURVE (lib/curve.h),
 * written to FILE (mode 0600, never over an existing file). Name it in
 * cluster.curve_keys and give the file to every router, node and
 * shoalctl of the cluster. */
#include "cli/keygen.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "lib/curve.h"

int
keygen_run(struct cli *c, int argc, char **argv)
{
	struct curve_keys k;
	char text[2 * (CURVE_KEY_Z85 + 1) + 1];
	int fd, len;

	(void)c;
	if (argc != 1 || argv[0][0] == '\0')
		return cli_usage_error("keygen takes one file name");
	if (curve_generate(&k) != 0) {
		cli_error("cannot make a key pair (libzmq without CURVE?)");
		return CLI_EXIT_FAIL;
	}
	len = snprintf(text, sizeof(text), "%s\n%s\n", k.pub, k.sec);
	memset(&k, 0, sizeof(k));
	fd = open(argv[0], O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		cli_error("%s: %s", argv[0], strerror(errno));
		return CLI_EXIT_FAIL;
	}
	if (write(fd, text, (size_t)len) != len || fsync(fd) != 0) {
		cli_error("%s: %s", argv[0], strerror(errno));
		close(fd);
		unlink(argv[0]);
		return CLI_EXIT_FAIL;
	}
	close(fd);
	memset(text, 0, sizeof(text));
	printf("cluster keys written to %s: name it in cluster.curve_keys\n",
	       argv[0]);
	return CLI_EXIT_OK;
}
