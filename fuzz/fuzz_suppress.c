/* libFuzzer harness: what the suppression list takes from peers and
 * remote servers (node/suppress/suppress.h, lib/suppress_key.h): a replication
 * record as a peer sends it (its checks), the address normaliser and key
 * parser on arbitrary bytes, the "no such user" predicate and the
 * sanitiser on arbitrary reply text. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "lib/suppress_key.h"
#include "node/suppress/suppress.h"
#include "proto/node_node.pb-c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool is_init;
	char norm[SUPPRESS_ADDR_MAX + 1], key[SUPPRESS_KEY_MAX];
	char clean[SUPPRESS_REPLY_MAX + 1];
	Shoal__ReplRecord *rec;
	char *text;
	uint32_t shard;

	if (!is_init) {
		log_init("fuzz", LOG_LVL_ERROR);
		is_init = true;
	}
	rec = shoal__repl_record__unpack(NULL, size, data);
	if (rec != NULL) {
		if (suppress_record_ok(rec, 256) && !rec->deleted) {
			Shoal__SuppressEntry *e = shoal__suppress_entry__unpack(
				NULL, rec->meta.len, rec->meta.data);

			if (e)
				shoal__suppress_entry__free_unpacked(e, NULL);
		}
		shoal__repl_record__free_unpacked(rec, NULL);
	}
	if (suppress_addr_norm((const char *)data, size, norm) == 0) {
		suppress_key(norm, 256, SUPPRESS_KEY_TAG, key);
		if (!suppress_key_parse(key, &shard) ||
		    shard != suppress_shard(norm, 256))
			abort();
	}
	text = malloc(size + 1);
	memcpy(text, data, size);
	text[size] = '\0';
	(void)suppress_key_parse(text, &shard);
	(void)suppress_is_no_such_user(550, size > 5 ? "5.1.1" : "", text);
	(void)suppress_is_no_such_user(550, "", text);
	suppress_sanitize(text, clean);
	free(text);
	return 0;
}
