/* shoalctl user add|remove: rewrites router.users_file atomically (a new
 * file beside it, fsync, rename), keeping every other line as it was.
 * Passwords are hashed with yescrypt (crypt(3) "$y$"); the routers read
 * the file at start and on SIGHUP. */
#include "cli/user.h"

#include <crypt.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "cli/cli.h"
#include "lib/buf.h"
#include "lib/json.h"
#include "lib/xmalloc.h"

#define USER_NAME_MAX 255
#define USER_PASS_MAX 1024
#define USER_FILE_MAX (16u << 20)

static bool
user_name_ok(const char *n)
{
	size_t len = strlen(n);

	if (len == 0 || len > USER_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (n[i] == ':' || isspace((unsigned char)n[i]) ||
		    iscntrl((unsigned char)n[i]))
			return false;
	return true;
}

/* The password: one line of stdin; on a terminal, asked without echo. */
static int
user_read_password(char *out, size_t len)
{
	struct termios old, quiet;
	bool tty = isatty(STDIN_FILENO);
	size_t n;

	if (tty) {
		fprintf(stderr, "password: ");
		tcgetattr(STDIN_FILENO, &old);
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		tcsetattr(STDIN_FILENO, TCSANOW, &quiet);
	}
	if (fgets(out, (int)len, stdin) == NULL)
		out[0] = '\0';
	if (tty) {
		tcsetattr(STDIN_FILENO, TCSANOW, &old);
		fprintf(stderr, "\n");
	}
	n = strlen(out);
	if (n == len - 1 && out[n - 1] != '\n')
		return -1;
	while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r'))
		out[--n] = '\0';
	return n == 0 ? -1 : 0;
}

/* The file without NAME's line, into b. Returns 0 or -errno. */
static int
user_read_others(const char *path, const char *name, struct buf *b)
{
	FILE *f = fopen(path, "r");
	char line[2048];
	size_t nlen = strlen(name);

	if (f == NULL)
		return errno == ENOENT ? 0 : -errno;
	while (fgets(line, sizeof(line), f) != NULL) {
		if (strncmp(line, name, nlen) == 0 && line[nlen] == ':')
			continue;
		if (buf_append(b, line, strlen(line)) != 0) {
			fclose(f);
			return -EFBIG;
		}
	}
	fclose(f);
	return 0;
}

static int
user_write(const char *path, const struct buf *b)
{
	char tmp[4096];
	int fd, rc = 0;

	snprintf(tmp, sizeof(tmp), "%s.new.%d", path, (int)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (fd < 0)
		return -errno;
	if ((b->len && write(fd, b->data, b->len) != (ssize_t)b->len) ||
	    fsync(fd) != 0)
		rc = -errno;
	if (close(fd) != 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && rename(tmp, path) != 0)
		rc = -errno;
	if (rc != 0)
		unlink(tmp);
	return rc;
}

int
user_cmd_run(struct cli *c, const char *verb, int argc, char **argv)
{
	bool add = strcmp(verb, "add") == 0;
	char pass[USER_PASS_MAX + 2], salt[CRYPT_GENSALT_OUTPUT_SIZE];
	struct crypt_data *cd = NULL;
	const char *path;
	struct buf b;
	int rc = CLI_EXIT_FAIL, err;

	if (argc != 1)
		return cli_usage_error("user %s takes one user name", verb);
	if (!user_name_ok(argv[0]))
		return cli_usage_error("a user name is 1 to %d characters, "
				       "without ':' or spaces",
				       USER_NAME_MAX);
	if (cli_load(c) != 0)
		return CLI_EXIT_FAIL;
	path = c->cfg->router.users_file;
	buf_init(&b, USER_FILE_MAX);
	if (path == NULL) {
		cli_error("%s: router.users_file is not set", c->cfg->path);
		goto done;
	}
	err = user_read_others(path, argv[0], &b);
	if (err != 0) {
		cli_error("%s: %s", path, strerror(-err));
		goto done;
	}
	if (add) {
		if (user_read_password(pass, sizeof(pass)) != 0) {
			cli_error("no password (one line of 1 to %d characters "
				  "on stdin)",
				  USER_PASS_MAX);
			goto done;
		}
		cd = xcalloc(1, sizeof(*cd));
		if (crypt_gensalt_rn("$y$", 0, NULL, 0, salt, sizeof(salt)) ==
			    NULL ||
		    crypt_r(pass, salt, cd) == NULL || cd->output[0] == '*') {
			cli_error("cannot hash the password (crypt)");
			goto done;
		}
		if (buf_printf(&b, "%s:%s\n", argv[0], cd->output) != 0) {
			cli_error("%s: file too large", path);
			goto done;
		}
	}
	err = user_write(path, &b);
	if (err != 0) {
		cli_error("%s: %s", path, strerror(-err));
		goto done;
	}
	if (!c->is_json) {
		printf("user %s %s in %s; reload the routers (SIGHUP)\n",
		       argv[0], add ? "set" : "removed", path);
	} else {
		struct json j;

		json_init(&j, stdout);
		json_object_begin(&j);
		json_kv_str(&j, "user", argv[0]);
		json_kv_str(&j, "action", verb);
		json_kv_str(&j, "file", path);
		json_object_end(&j);
		json_end(&j);
	}
	rc = CLI_EXIT_OK;
done:
	memset(pass, 0, sizeof(pass));
	if (cd) {
		memset(cd, 0, sizeof(*cd));
		free(cd);
	}
	buf_free(&b);
	cli_unload(c);
	return rc;
}
