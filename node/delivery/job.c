/* Delivery jobs: the shared message snapshot's lifetime. */
#include "node/delivery/job.h"

#include <stdlib.h>

void
job_msg_unref(struct job_msg *m)
{
	if (--m->refs > 0)
		return;
	shoal__stored_message__free_unpacked(m->sm, NULL);
	free(m->body);
	free(m);
}

void
job_free(struct job *j)
{
	if (j == NULL)
		return;
	job_msg_unref(j->msg); /* taken when the job was made */
	free(j->rcpt);
	free(j->res);
	free(j);
}
