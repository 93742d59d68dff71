/* The SMTP commands up to the message (router/session_cmd.c): the
 * handlers router/session_table.c's rows name. Each runs only in a state
 * its row takes it in, and on success calls session_cmd_ok(). */
#ifndef SHOAL_ROUTER_SESSION_CMD_H
#define SHOAL_ROUTER_SESSION_CMD_H

struct session;
struct smtp_cmd;

/* HELO / EHLO: note the name (kept to domain characters for our
 * Received: header), reset the transaction; EHLO lists our extensions. */
void session_cmd_helo(struct session *s, const struct smtp_cmd *cmd);
void session_cmd_ehlo(struct session *s, const struct smtp_cmd *cmd);

/* MAIL: parameters, SIZE against router.max_message_size, AUTH where the
 * listener requires it, the per-client message rate. */
void session_cmd_mail(struct session *s, const struct smtp_cmd *cmd);

/* RCPT: the relay rule (our postmaster takes mail from anyone), the
 * recipient limit, then the suppression check when it is on: the session
 * waits in SESSION_ST_WAIT for the answer and resumes with its reply. */
void session_cmd_rcpt(struct session *s, const struct smtp_cmd *cmd);

/* RSET, NOOP, QUIT (221, then the session closes), VRFY (252), EXPN
 * (502: disabled), HELP (214). */
void session_cmd_rset(struct session *s, const struct smtp_cmd *cmd);
void session_cmd_noop(struct session *s, const struct smtp_cmd *cmd);
void session_cmd_quit(struct session *s, const struct smtp_cmd *cmd);
void session_cmd_vrfy(struct session *s, const struct smtp_cmd *cmd);
void session_cmd_expn(struct session *s, const struct smtp_cmd *cmd);
void session_cmd_help(struct session *s, const struct smtp_cmd *cmd);

/* STARTTLS (RFC 3207): 502 where it is not offered, 503 inside TLS; else
 * the handshake starts and the session begins again before EHLO. */
void session_cmd_starttls(struct session *s, const struct smtp_cmd *cmd);

#endif
