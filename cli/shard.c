/* shoalctl shard list / move: arguments are checked now so scripts get
 * their usage errors today; the map changes themselves come later. */
#include "cli/shard.h"

#include <errno.h>
#include <stdlib.h>

#include "cli/cli.h"

#define SHARD_NUMBER_MAX 65535   /* cluster.shards is at most 65536 */

int
shard_list_run(struct cli *c, int argc, char **argv)
{
	(void)c;
	(void)argv;
	if (argc != 0)
		return cli_usage_error("shard list takes no arguments");
	return cli_not_available("shard list");
}

int
shard_move_run(struct cli *c, int argc, char **argv)
{
	unsigned long v;
	char *end;

	if (argc != 1)
		return cli_usage_error("shard move takes one shard number");
	errno = 0;
	v = strtoul(argv[0], &end, 10);
	if (argv[0][0] < '0' || argv[0][0] > '9' || *end != '\0' ||
	    errno != 0 || v > SHARD_NUMBER_MAX)
		return cli_usage_error("shard move: \"%s\" is not a shard "
				       "number",
				       argv[0]);
	if (c->opt_to == NULL || c->opt_to[0] == '\0')
		return cli_usage_error("shard move needs --to NODE");
	return cli_not_available("shard move");
}
