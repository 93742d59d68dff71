/* Process setup and self-inspection shared by the daemons. Knows nothing
 * of mail. */
#ifndef SHOAL_PROC_H
#define SHOAL_PROC_H

/* Raise the soft limit on open files to the hard limit (a router serves
 * thousands of sessions, a node holds hundreds of SMTP connections).
 * Returns the new soft limit, or -errno. */
long proc_raise_nofile(void);

/* Bytes of this process's resident memory that are mapped files (and
 * shared memory): the third field of /proc/self/statm. Returns 0 and sets
 * *out, or -errno. */
int proc_mapped_resident(unsigned long long *out);

#endif
