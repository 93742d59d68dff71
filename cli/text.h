/* Showing untrusted text: addresses, SMTP replies and headers come from
 * whoever talked to a router, and must not drive the operator's terminal.
 * Also the UTF-8 decoder that json.c shares. Knows nothing of mail. */
#ifndef SHOAL_CLI_TEXT_H
#define SHOAL_CLI_TEXT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Bytes text_clean() needs for n input bytes: each may become \xNN. */
#define TEXT_CLEAN_BUF(n) (4 * (n) + 4)

/* Copy len bytes of s into out (outlen bytes, NUL-terminated) so that a
 * terminal shows them and nothing else: C0 and C1 controls, DEL and bytes
 * that are not UTF-8 become \xNN, a backslash becomes \\, well-formed
 * UTF-8 stays. When out is too small the copy ends in "...". Returns out. */
char *text_clean(char *out, size_t outlen, const char *s, size_t len);

/* Print len bytes of s on one line, escaped as text_clean() does, without
 * a length limit. */
void text_print(FILE *f, const void *s, size_t len);

/* Print a multi-line text (a header section): CRLF and LF end lines, tabs
 * stay, everything else as text_clean() does. A final line without an end
 * gets one. */
void text_print_lines(FILE *f, const void *s, size_t len);

/* "2023-11-14 22:13:20Z" for unix seconds t into out[24]; "-" for 0. */
char *text_time(char out[24], uint64_t t);

/* A short age such as "45s", "12m", "3h5m", "2d4h" into out[24]; "-" for
 * 0 seconds of start (nothing there). */
char *text_age(char out[24], uint64_t start, uint64_t now);

#endif
