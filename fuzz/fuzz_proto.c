/* libFuzzer harness: what other processes send a node, decoded as the
 * node decodes it: router requests (envelopes checked as ingest does),
 * peer messages and shard moves (records checked as replication does),
 * admin requests, shard maps (lib/shardmap.c's checks). */
#include <stdint.h>
#include <string.h>

#include "lib/envelope.h"
#include "lib/shardmap.h"
#include "node/cluster/repl.h"
#include "proto/cli_node.pb-c.h"
#include "proto/node_node.pb-c.h"
#include "proto/router_node.pb-c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_SHARDS 16

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Shoal__RouterRequest *rr;
	Shoal__PeerMessage *pm;
	Shoal__MoveBatch *mb;
	Shoal__AdminRequest *ar;
	Shoal__ShardMap *m;
	const char *why;

	rr = shoal__router_request__unpack(NULL, size, data);
	if (rr) {
		if (rr->body_case == SHOAL__ROUTER_REQUEST__BODY_ENQUEUE &&
		    rr->enqueue->envelope)
			envelope_validate(rr->enqueue->envelope, &why);
		shoal__router_request__free_unpacked(rr, NULL);
	}
	pm = shoal__peer_message__unpack(NULL, size, data);
	if (pm) {
		if (pm->body_case == SHOAL__PEER_MESSAGE__BODY_BATCH)
			for (size_t i = 0; i < pm->batch->n_records; i++)
				repl_record_ok(pm->batch->records[i],
					       FUZZ_SHARDS);
		shoal__peer_message__free_unpacked(pm, NULL);
	}
	mb = shoal__move_batch__unpack(NULL, size, data);
	if (mb) {
		for (size_t i = 0; i < mb->n_records; i++)
			repl_record_ok(mb->records[i], FUZZ_SHARDS);
		shoal__move_batch__free_unpacked(mb, NULL);
	}
	ar = shoal__admin_request__unpack(NULL, size, data);
	if (ar)
		shoal__admin_request__free_unpacked(ar, NULL);
	m = shardmap_unpack(data, size, FUZZ_SHARDS);
	if (m) {
		Shoal__ShardMap *copy = shardmap_dup(m);

		shardmap_newer(copy, m);
		shardmap_free(copy);
		shardmap_free(m);
	}
	return 0;
}
