/* shoalctl node drain / failover: arguments are checked now; the map
 * changes themselves come later. */
#include "cli/node.h"

#include <stdio.h>

#include "cli/cli.h"

int
node_cmd_run(struct cli *c, const char *verb, int argc, char **argv)
{
	char what[32];

	(void)c;
	if (argc != 1 || argv[0][0] == '\0')
		return cli_usage_error("node %s takes one node id", verb);
	snprintf(what, sizeof(what), "node %s", verb);
	return cli_not_available(what);
}
