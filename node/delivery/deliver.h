/* Delivery: turns jobs into SMTP transactions. Resolves each job's domain
 * (or takes its delivery.routes relay), groups jobs by destination (the
 * set of MX hosts, so every domain of one provider shares a queue and its
 * limits: MX rollup), keeps a pool of connections per destination within
 * the traffic-shaping limits (node/shaping.c), tries MX hosts in order and
 * moves to the next on connection trouble (backup MX), reuses connections
 * for several messages, and hands every job back to the scheduler with one
 * result per recipient. */
#ifndef SHOAL_NODE_DELIVER_H
#define SHOAL_NODE_DELIVER_H

#include <stdint.h>

struct node;
struct job;
struct deliver;

/* Returns NULL (logged) when DNS or TLS cannot be set up. */
struct deliver *deliver_new(struct node *n);

/* Closes connections and drops jobs without results (they are due again
 * at the next start). deliver_free(NULL) does nothing. */
void deliver_free(struct deliver *d);

/* The node adopted a new shard map: its share of the cluster-wide limits
 * (node/shaping.h) is computed again and applied to every destination
 * (the rate at once, connections above a smaller count as they finish).
 * deliver_map_changed(NULL) does nothing. */
void deliver_map_changed(struct deliver *d);

/* Take a job; its results go to scheduler_job_done(). Before the job
 * starts (on a new or a reused connection) delivery asks
 * scheduler_job_may_start(); a job that may not start is handed back with
 * scheduler_job_abandon(). */
void deliver_submit(struct deliver *d, struct job *j);

/* Hand back every waiting job that may not start now (ownership, fencing
 * or a freeze changed); attempts already under way finish. Not from
 * inside delivery's own callbacks. */
void deliver_recheck(struct deliver *d);

/* Open connections now (all destinations). */
uint32_t deliver_connections(const struct deliver *d);

/* Call fn for every destination with the domain of the job that created
 * it (destinations are MX sets; several domains may share one) and its
 * open connections. fn must not submit jobs. */
typedef void (*deliver_dest_fn)(const char *domain, uint32_t n_conns,
				void *arg);
void deliver_foreach_dest(const struct deliver *d, deliver_dest_fn fn,
			  void *arg);

#endif
