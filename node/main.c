/* shoal-node -c FILE -n NODE_ID: reads flags and config, builds the node,
 * runs the loop. Logs to stderr or log.file; runs in the foreground.
 * sd_notify(3): READY=1 once the store is open and the endpoint bound,
 * STOPPING=1 at SIGTERM (node/node.c); no-ops without NOTIFY_SOCKET. */
#include <errno.h>
#include <event2/event.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>

#include "lib/config.h"
#include "lib/curve.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/proc.h"
#include "lib/shardmap.h"
#include "node/node.h"

static void
usage(FILE *f)
{
	fprintf(f, "usage: shoal-node -c FILE -n NODE_ID [-j] [-d SUBSYSTEMS]\n"
		   "       shoal-node -t -c FILE [-n NODE_ID]\n"
		   "  -c FILE    cluster config (libconfig syntax)\n"
		   "  -n ID      which node of the config this process is\n"
		   "  -t         check the config (and that it names ID), exit\n"
		   "  -d LIST    debug subsystems: main,smtp,zmq,store,dns,repl,all\n"
		   "  -j         join a running cluster: on the first start take\n"
		   "             its shard map instead of deriving one\n"
		   "  -h         this help\n");
}

int
main(int argc, char **argv)
{
	const char *conf = NULL, *id = NULL, *debug = NULL;
	struct config *cfg = NULL;
	struct event_base *base = NULL;
	struct node *n = NULL;
	const struct cfg_node *me;
	enum log_level level;
	char err[1024];
	int c, rc, shards = 0;
	bool join = false, check_only = false;
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "node", required_argument, NULL, 'n' },
		{ "debug", required_argument, NULL, 'd' },
		{ "join", no_argument, NULL, 'j' },
		{ "check-config", no_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};

	while ((c = getopt_long(argc, argv, "c:n:d:jth", opts, NULL)) != -1) {
		switch (c) {
		case 'j': join = true; break;
		case 't': check_only = true; break;
		case 'c': conf = optarg; break;
		case 'n': id = optarg; break;
		case 'd': debug = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (conf == NULL || (id == NULL && !check_only) || optind != argc) {
		usage(stderr);
		return 2;
	}
	log_init("shoal-node", LOG_LVL_INFO);
	if (config_load(conf, &cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "shoal-node: %s\n", err);
		return 1;
	}
	{
		struct cfg_shaping *rules = NULL;

		/* the shaping rules too: -t before a SIGHUP checks them */
		if (config_shaping_load(cfg->delivery.shaping_rules, &rules,
					err, sizeof(err)) != 0) {
			fprintf(stderr, "shoal-node: delivery.shaping_rules: "
				"%s\n", err);
			config_free(cfg);
			return 1;
		}
		config_shaping_free(rules);
	}
	if (check_only) {
		rc = id && config_find_node(cfg, id) == NULL;
		if (rc)
			fprintf(stderr, "shoal-node: %s: no node with id \"%s\"\n",
				conf, id);
		else
			printf("shoal-node: %s: config ok\n", conf);
		config_free(cfg);
		return rc;
	}
	if (curve_init(cfg->cluster.curve_keys, err, sizeof(err)) != 0) {
		fprintf(stderr, "shoal-node: %s\n", err);
		config_free(cfg);
		return 1;
	}
	if (log_parse_level(cfg->log.level, &level) == 0)
		log_init("shoal-node", level);
	if ((debug && log_set_debug(debug) != 0) ||
	    (!debug && cfg->log.debug[0] && log_set_debug(cfg->log.debug) != 0)) {
		fprintf(stderr, "shoal-node: bad debug subsystem list\n");
		config_free(cfg);
		return 2;
	}
	log_set_json(cfg->log.format == CFG_LOG_JSON);
	if (cfg->log.file && (rc = log_open_file(cfg->log.file)) != 0) {
		fprintf(stderr, "shoal-node: %s: log.file %s: %s\n", conf,
			cfg->log.file, shoal_strerror(rc));
		config_free(cfg);
		return 1;
	}
	me = config_find_node(cfg, id);
	if (me == NULL) {
		fprintf(stderr, "shoal-node: %s: no node with id \"%s\"\n",
			conf, id);
		config_free(cfg);
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	if (proc_raise_nofile() < 0)
		log_warn("node event=rlimit error=\"cannot raise the open files limit\"");
	base = event_base_new();
	rc = node_new(cfg, me, base, join, &n);
	if (rc != 0) {
		fprintf(stderr, "shoal-node: cannot start node %s: %s\n", id,
			shoal_strerror(rc));
		event_base_free(base);
		config_free(cfg);
		return 1;
	}
	shards = (int)shardmap_shards_of(n->map, id, SHARDMAP_PRIMARY, NULL);
	log_info("node id=%s event=ready endpoint=%s epoch=%llu "
		 "primary_shards=%d",
		 id, me->endpoint, (unsigned long long)n->map->epoch, shards);
	sd_notify(0, "READY=1\nSTATUS=Serving");
	event_base_dispatch(base);
	/* STOPPING=1 went out at the signal; this covers a loop that ended
	 * otherwise */
	sd_notify(0, "STOPPING=1");
	node_free(n);
	/* once more, without blocking: libevent finishes freeing buffer
	 * events (TLS ones free their socket below them) in callbacks */
	event_base_loop(base, EVLOOP_NONBLOCK);
	event_base_free(base);
	log_info("node id=%s event=stopped", id);
	config_free(cfg);
	log_close();
	return 0;
}
