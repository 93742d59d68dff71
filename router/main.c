/* shoal-router -c FILE: reads flags and config, builds the node client and
 * the listeners, runs the loop. Logs to stderr; runs in the foreground.
 * SIGTERM/SIGINT: stop accepting, let sessions finish (up to
 * router.shutdown_timeout), then exit. SIGHUP: reopen log.file, reload TLS
 * and users. sd_notify(3): READY=1 once listening with a shard map,
 * STOPPING=1 at the signal (no-ops without NOTIFY_SOCKET). */
#include <event2/event.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <systemd/sd-daemon.h>

#include "lib/cidr.h"
#include "lib/config.h"
#include "lib/curve.h"
#include "lib/err.h"
#include "lib/log.h"
#include "lib/proc.h"
#include "lib/xmalloc.h"
#include "router/enqueue.h"
#include "router/http.h"
#include "router/listener.h"
#include "router/metrics.h"
#include "router/auth.h"
#include "router/limits.h"
#include "router/tls.h"
#include "router/session.h"
#include "router/signer.h"

#define ROUTER_FLUSH_S 3   /* after the last node answer: replies leave */

struct router {
	struct session_env env;
	struct listener *listener;
	struct router_metrics *metrics;   /* GET /metrics, may be NULL */
	struct event *sig_term, *sig_int, *sig_hup, *drain_timer;
	bool stopping;
};

static void
usage(FILE *f)
{
	fprintf(f, "usage: shoal-router [-t] -c FILE [-d SUBSYSTEMS]\n"
		   "  -c FILE    cluster config (libconfig syntax)\n"
		   "  -t         check the config and exit\n"
		   "  -d LIST    debug subsystems: main,smtp,zmq,all\n"
		   "  -h         this help\n");
}

static void
router_on_ready(void *arg)
{
	struct router *r = arg;

	r->env.is_ready = true;
	log_info("router event=ready listeners=%zu http_listeners=%zu "
		 "shards=%u",
		 r->env.cfg->router.n_listen, r->env.cfg->router.n_http_listen,
		 r->env.cfg->cluster.shards);
	sd_notify(0, "READY=1\nSTATUS=Accepting mail");
}

/* Nothing left to answer: no SMTP session, no HTTP request waiting for
 * its node. */
static bool
router_is_idle(const struct router *r)
{
	return r->env.sessions == 0 && http_server_busy(r->env.http) == 0;
}

static void
router_on_session_close(void *arg)
{
	struct router *r = arg;

	if (r->stopping && router_is_idle(r))
		event_base_loopbreak(r->env.base);
}

/* The last resort after the deadline: a session still waiting for its
 * node gets that long (router.node_timeout_ms bounds the wait), plus the
 * time to flush its last replies. */
static void
router_on_final_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct router *r = arg;

	(void)fd;
	(void)what;
	log_warn("router event=shutdown_forced sessions=%u", r->env.sessions);
	event_base_loopbreak(r->env.base);
}

/* router.shutdown_timeout passed: 421 to every session not waiting for
 * its node. */
static void
router_on_drain_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct router *r = arg;
	struct timeval tv = {
		r->env.cfg->router.node_timeout_ms / 1000 + ROUTER_FLUSH_S, 0
	};

	(void)fd;
	(void)what;
	log_warn("router event=drain_timeout sessions=%u", r->env.sessions);
	session_shutdown_all(&r->env, true);
	if (router_is_idle(r)) {
		event_base_loopbreak(r->env.base);
		return;
	}
	event_free(r->drain_timer);
	r->drain_timer = evtimer_new(r->env.base, router_on_final_timeout, r);
	evtimer_add(r->drain_timer, &tv);
}

/* SIGTERM/SIGINT: close the listeners, let sessions finish their
 * messages for router.shutdown_timeout, then exit. A second signal exits
 * at once (no reply is given for what was not acked). */
static void
router_on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct router *r = arg;
	struct timeval tv = { r->env.cfg->router.shutdown_timeout, 0 };

	(void)what;
	if (r->stopping) {
		log_warn("router event=stop_now signal=%d sessions=%u",
			 (int)sig, r->env.sessions);
		event_base_loopbreak(r->env.base);
		return;
	}
	r->stopping = true;
	sd_notify(0, "STOPPING=1\nSTATUS=Closing listeners, draining sessions");
	log_info("router event=stopping signal=%d sessions=%u "
		 "shutdown_timeout=%u",
		 (int)sig, r->env.sessions, r->env.cfg->router.shutdown_timeout);
	listener_stop(r->listener);
	http_server_stop(r->env.http);
	session_shutdown_all(&r->env, false);
	if (router_is_idle(r)) {
		event_base_loopbreak(r->env.base);
		return;
	}
	r->drain_timer = evtimer_new(r->env.base, router_on_drain_timeout, r);
	evtimer_add(r->drain_timer, &tv);
}

/* SIGHUP: the log file (logrotate), and the certificate, key, users file
 * and DKIM keys again (renewed on disk). */
static void
router_on_hup(evutil_socket_t sig, short what, void *arg)
{
	struct router *r = arg;

	(void)sig;
	(void)what;
	log_reopen();
	log_info("router event=sighup");
	sd_notify(0, "RELOADING=1");
	if (r->env.tls)
		tls_server_reload(r->env.tls);
	if (r->env.auth)
		auth_reload(r->env.auth);
	signer_reload(r->env.signer);
	sd_notify(0, "READY=1");
}

/* TLS from the config: a listener that needs it without a certificate is
 * an error. */
static int
router_setup_tls(struct router *r, char *err, size_t errlen)
{
	const struct config *cfg = r->env.cfg;
	int rc;

	r->env.tls = tls_server_new(cfg, &rc);
	if (rc != 0) {
		snprintf(err, errlen, "%s: cannot load router.tls_cert / "
			 "router.tls_key (see the log)", cfg->path);
		return -1;
	}
	r->env.auth = auth_new(cfg, &rc);
	if (rc != 0) {
		snprintf(err, errlen, "%s: cannot read router.users_file %s "
			 "(see the log)", cfg->path, cfg->router.users_file);
		return -1;
	}
	for (size_t i = 0; i < cfg->router.n_listen; i++) {
		const struct cfg_listen *ls = &cfg->router.listen[i];

		if (r->env.tls == NULL && (ls->tls == CFG_TLS_IMPLICIT ||
					   ls->tls == CFG_TLS_STARTTLS)) {
			snprintf(err, errlen, "%s: listener %s has tls = "
				 "\"%s\" but router.tls_cert is not set",
				 cfg->path, ls->address,
				 ls->tls == CFG_TLS_IMPLICIT ? "implicit" :
							       "starttls");
			return -1;
		}
	}
	return 0;
}

static int
router_parse_relay(struct router *r, char *err, size_t errlen)
{
	const struct config *cfg = r->env.cfg;

	r->env.relay_nets = xcalloc(cfg->router.n_relay_networks + 1,
				    sizeof(*r->env.relay_nets));
	for (size_t i = 0; i < cfg->router.n_relay_networks; i++) {
		if (cidr_parse(cfg->router.relay_networks[i],
			       &r->env.relay_nets[i]) != 0) {
			snprintf(err, errlen,
				 "%s: router.relay_networks: bad network "
				 "\"%s\"",
				 cfg->path, cfg->router.relay_networks[i]);
			return -1;
		}
	}
	r->env.n_relay_nets = cfg->router.n_relay_networks;
	return 0;
}

int
main(int argc, char **argv)
{
	const char *conf = NULL, *debug = NULL;
	struct config *cfg = NULL;
	struct router r;
	enum log_level level;
	char err[1024];
	int c, rc, status = 1;
	bool check_only = false;
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "debug", required_argument, NULL, 'd' },
		{ "check-config", no_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};

	while ((c = getopt_long(argc, argv, "c:d:th", opts, NULL)) != -1) {
		switch (c) {
		case 'c': conf = optarg; break;
		case 'd': debug = optarg; break;
		case 't': check_only = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (conf == NULL || optind != argc) {
		usage(stderr);
		return 2;
	}
	log_init("shoal-router", LOG_LVL_INFO);
	if (config_load(conf, &cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "shoal-router: %s\n", err);
		return 1;
	}
	if (check_only) {
		printf("shoal-router: %s: config ok\n", conf);
		config_free(cfg);
		return 0;
	}
	if (curve_init(cfg->cluster.curve_keys, err, sizeof(err)) != 0) {
		fprintf(stderr, "shoal-router: %s\n", err);
		config_free(cfg);
		return 1;
	}
	if (log_parse_level(cfg->log.level, &level) == 0)
		log_init("shoal-router", level);
	if ((debug && log_set_debug(debug) != 0) ||
	    (!debug && cfg->log.debug[0] && log_set_debug(cfg->log.debug) != 0)) {
		fprintf(stderr, "shoal-router: bad debug subsystem list\n");
		config_free(cfg);
		return 2;
	}
	log_set_json(cfg->log.format == CFG_LOG_JSON);
	if (cfg->log.file && (rc = log_open_file(cfg->log.file)) != 0) {
		fprintf(stderr, "shoal-router: %s: log.file %s: %s\n", conf,
			cfg->log.file, shoal_strerror(rc));
		config_free(cfg);
		return 1;
	}
	memset(&r, 0, sizeof(r));
	r.env.cfg = cfg;
	router_stats_init(&r.env.stats);
	if (router_parse_relay(&r, err, sizeof(err)) != 0) {
		fprintf(stderr, "shoal-router: %s\n", err);
		goto out;
	}
	r.env.limits = limits_new(cfg);
	if (router_setup_tls(&r, err, sizeof(err)) != 0) {
		fprintf(stderr, "shoal-router: %s\n", err);
		goto out;
	}
	if (signer_new(cfg, &r.env.signer, err, sizeof(err)) != 0) {
		fprintf(stderr, "shoal-router: %s\n", err);
		goto out;
	}
	if (qid_gen_init(&r.env.qids) != 0) {
		fprintf(stderr, "shoal-router: cannot seed queue ids\n");
		goto out;
	}
	signal(SIGPIPE, SIG_IGN);
	if (proc_raise_nofile() < 0)
		log_warn("router event=rlimit error=\"cannot raise the open files limit\"");
	r.env.base = event_base_new();
	if (r.env.auth && auth_start(r.env.auth, r.env.base) != 0) {
		fprintf(stderr, "shoal-router: cannot start the AUTH threads\n");
		goto out;
	}
	r.env.on_close = router_on_session_close;
	r.env.on_close_arg = &r;
	r.env.enq = enqueue_new(r.env.base, cfg, router_on_ready, &r);
	if (r.env.enq == NULL) {
		fprintf(stderr, "shoal-router: cannot set up the links to "
			"the nodes (see the log)\n");
		goto out;
	}
	r.env.http = http_server_new(&r.env, &rc);
	if (rc != 0) {
		fprintf(stderr, "shoal-router: cannot start the HTTP API "
			"(see the log)\n");
		goto out;
	}
	r.metrics = router_metrics_new(&r.env);
	r.listener = listener_new(&r.env);
	if (r.listener == NULL) {
		fprintf(stderr, "shoal-router: cannot listen (see log)\n");
		goto out;
	}
	r.sig_term = evsignal_new(r.env.base, SIGTERM, router_on_signal, &r);
	r.sig_int = evsignal_new(r.env.base, SIGINT, router_on_signal, &r);
	r.sig_hup = evsignal_new(r.env.base, SIGHUP, router_on_hup, &r);
	event_add(r.sig_term, NULL);
	event_add(r.sig_int, NULL);
	event_add(r.sig_hup, NULL);
	event_base_dispatch(r.env.base);
	log_info("router event=stopped accepted=%llu http_queued=%llu",
		 (unsigned long long)r.env.accepted,
		 (unsigned long long)r.env.stats.http_queued);
	status = 0;
out:
	listener_free(r.listener);
	http_server_free(r.env.http); /* before the node links and auth */
	router_metrics_free(r.metrics);
	enqueue_free(r.env.enq);
	if (r.sig_term)
		event_free(r.sig_term);
	if (r.sig_int)
		event_free(r.sig_int);
	if (r.sig_hup)
		event_free(r.sig_hup);
	if (r.drain_timer)
		event_free(r.drain_timer);
	auth_free(r.env.auth);	/* its threads answer on the base */
	if (r.env.base)
		event_base_free(r.env.base);
	free(r.env.relay_nets);
	tls_server_free(r.env.tls);
	signer_free(r.env.signer);
	limits_free(r.env.limits);
	config_free(cfg);
	log_close();
	return status;
}
