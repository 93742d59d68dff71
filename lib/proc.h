/* Process setup shared by the daemons. Knows nothing of mail. */
#ifndef SHOAL_PROC_H
#define SHOAL_PROC_H

/* Raise the soft limit on open files to the hard limit (a router serves
 * thousands of sessions, a node holds hundreds of SMTP connections).
 * Returns the new soft limit, or -errno. */
long proc_raise_nofile(void);

#endif
