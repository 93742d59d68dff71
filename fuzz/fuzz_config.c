/* libFuzzer harness: a cluster config file, through libconfig and every
 * check of lib/config.c. Accepted configs are freed again. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "lib/config.h"
#include "lib/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char path[64];
	struct config *cfg = NULL;
	char err[1024];
	FILE *f;

	if (path[0] == '\0') {
		log_init("fuzz", LOG_LVL_ERROR);
		snprintf(path, sizeof(path), "/tmp/shoal-fuzz-config-%d.conf",
			 (int)getpid());
	}
	f = fopen(path, "wb");
	if (f == NULL)
		return 0;
	fwrite(data, 1, size, f);
	fclose(f);
	if (config_load(path, &cfg, err, sizeof(err)) == 0)
		config_free(cfg);
	unlink(path);
	return 0;
}
