/* Check suite for lib/smtp_data.c: the message content checker that DATA
 * and BDAT both feed (RFC 5321 4.1.1.4, 4.5.2, 2.3.8, 4.5.3.1.6, 6.3; RFC
 * 3030) and its SMTP smuggling defences (CVE-2023-51764). The DATA cases
 * are one table run with tcase_add_loop_test(), the BDAT (chunked) cases
 * another; each table is then fed split at every octet, random inputs are
 * held against a line-at-a-time reference model written for this test,
 * and the same content sent both ways must get the same verdict. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/smtp_data.h"
#include "tests/unit/check_helpers.h"

#define N SMTP_DATA_NORMALIZE_LF
#define BIG ((uint64_t)1 << 20)
#define LEN(s) (sizeof(s) - 1)
#define IN(s) s, LEN(s)
#define OUT(s) s, LEN(s)
#define NOOUT NULL, 0

/* Injected after a smuggled "end of data": must stay message content. */
#define SMUG "MAIL FROM:<evil@example.org>\r\nRCPT TO:<v@example.com>\r\n"

struct data_case {
	const char *name;
	const char *in;
	size_t in_len;
	unsigned flags;
	uint64_t max;
	int status;
	enum smtp_data_err error;
	const char *out; /* the output; NULL: not checked */
	size_t out_len;
	size_t consumed;
	bool has_8bit;
};

/* Lines at the RFC 5321 4.5.3.1.6 limit, built in data_suite(). */
static char line998_in[998 + LEN("\r\n.\r\n") + 1];
static char line998_out[998 + LEN("\r\n") + 1];
static char line999_in[999 + LEN("\r\n.\r\n") + 1];
static char stuffed998_in[1 + 998 + LEN("\r\n.\r\n") + 1];
static char lf998_in[998 + LEN("\ny\r\n.\r\n") + 1];
static char lf998_out[998 + LEN("\r\ny\r\n") + 1];
static char lf999_in[999 + LEN("\ny\r\n.\r\n") + 1];
static char nocrlf5000_in[5000 + LEN("\r\n.\r\nQUIT\r\n") + 1];

/* Header sections with Received: fields (RFC 5321 6.3), built in
 * data_build_lines(): HOPS_MAX - 1 and HOPS_MAX of them, then a body;
 * the DATA forms end in ".\r\n". */
#define HOP "Received: from a.example by b.example\r\n"
#define HOPS_BODY "Subject: s\r\n\r\nbody\r\n"
static char hops49[(SMTP_DATA_HOPS_MAX - 1) * LEN(HOP) + LEN(HOPS_BODY) + 1];
static char hops50[SMTP_DATA_HOPS_MAX * LEN(HOP) + LEN(HOPS_BODY) + 1];
static char hops49_dot[sizeof(hops49) + 3];
static char hops50_dot[sizeof(hops50) + 3];
/* HOPS_MAX Received: lines after the header ended: not hops */
static char
	hops_in_body[LEN("S: s\r\n\r\n") + SMTP_DATA_HOPS_MAX * LEN(HOP) + 1];

static const struct data_case data_cases[] = {
	/* RFC 5321 4.1.1.4, 4.5.2 */
	{ "plain_message", IN("Subject: hi\r\n\r\nHello\r\n.\r\n"), 0, BIG,
	  SMTP_DATA_DONE, SMTP_DATA_OK, OUT("Subject: hi\r\n\r\nHello\r\n"),
	  LEN("Subject: hi\r\n\r\nHello\r\n.\r\n"), false },
	{ "dot_stuffed_lines", IN("a\r\n..b\r\n..\r\n...\r\n.\r\n"), 0, BIG,
	  SMTP_DATA_DONE, SMTP_DATA_OK, OUT("a\r\n.b\r\n.\r\n..\r\n"),
	  LEN("a\r\n..b\r\n..\r\n...\r\n.\r\n"), false },
	{ "one_leading_dot_dropped", IN("a\r\n.b\r\n.\r\n"), 0, BIG,
	  SMTP_DATA_DONE, SMTP_DATA_OK, OUT("a\r\nb\r\n"),
	  LEN("a\r\n.b\r\n.\r\n"), false },
	{ "dot_space_is_not_end", IN("a\r\n. \r\n.\r\n"), 0, BIG,
	  SMTP_DATA_DONE, SMTP_DATA_OK, OUT("a\r\n \r\n"),
	  LEN("a\r\n. \r\n.\r\n"), false },
	{ "dot_inside_line_kept", IN("a.b\r\n.\r\n"), 0, BIG, SMTP_DATA_DONE,
	  SMTP_DATA_OK, OUT("a.b\r\n"), LEN("a.b\r\n.\r\n"), false },
	{ "empty_message", IN(".\r\n"), 0, BIG, SMTP_DATA_DONE, SMTP_DATA_OK,
	  OUT(""), 3, false },
	{ "empty_message_then_quit", IN(".\r\nQUIT\r\n"), 0, BIG,
	  SMTP_DATA_DONE, SMTP_DATA_OK, OUT(""), 3, false },
	{ "leading_dotdot_line", IN("..\r\n.\r\n"), 0, BIG, SMTP_DATA_DONE,
	  SMTP_DATA_OK, OUT(".\r\n"), LEN("..\r\n.\r\n"), false },
	{ "leading_dotdot_text", IN("..hidden\r\n.\r\n"), 0, BIG,
	  SMTP_DATA_DONE, SMTP_DATA_OK, OUT(".hidden\r\n"),
	  LEN("..hidden\r\n.\r\n"), false },
	{ "empty_lines_only", IN("\r\n\r\n.\r\n"), 0, BIG, SMTP_DATA_DONE,
	  SMTP_DATA_OK, OUT("\r\n\r\n"), LEN("\r\n\r\n.\r\n"), false },
	{ "pipelined_quit_not_consumed", IN("a\r\n.\r\nQUIT\r\n"), 0, BIG,
	  SMTP_DATA_DONE, SMTP_DATA_OK, OUT("a\r\n"), LEN("a\r\n.\r\n"),
	  false },
	{ "pipelined_second_terminator_not_consumed", IN("a\r\n.\r\n.\r\n"), 0,
	  BIG, SMTP_DATA_DONE, SMTP_DATA_OK, OUT("a\r\n"), LEN("a\r\n.\r\n"),
	  false },
	{ "more_no_end_yet", IN("a\r\nb\r\n"), 0, BIG, SMTP_DATA_MORE,
	  SMTP_DATA_OK, OUT("a\r\nb\r\n"), LEN("a\r\nb\r\n"), false },
	{ "more_dot_cr_pending", IN("a\r\n.\r"), 0, BIG, SMTP_DATA_MORE,
	  SMTP_DATA_OK, OUT("a\r\n"), LEN("a\r\n.\r"), false },
	{ "more_cr_pending", IN("a\r"), 0, BIG, SMTP_DATA_MORE, SMTP_DATA_OK,
	  OUT("a"), 2, false },
	{ "more_empty_input", IN(""), 0, BIG, SMTP_DATA_MORE, SMTP_DATA_OK,
	  OUT(""), 0, false },

	/* CVE-2023-51764: none of these ends the data */
	{ "smuggle_lf_dot_lf", IN("a\n.\n" SMUG "b\r\n.\r\nQUIT\r\n"), 0, BIG,
	  SMTP_DATA_DONE, SMTP_DATA_E_BARE_LF, OUT("a"),
	  LEN("a\n.\n" SMUG "b\r\n.\r\n"), false },
	{ "smuggle_cr_dot_lf", IN("a\r.\n" SMUG "b\r\n.\r\nQUIT\r\n"), 0, BIG,
	  SMTP_DATA_DONE, SMTP_DATA_E_BARE_CR, OUT("a"),
	  LEN("a\r.\n" SMUG "b\r\n.\r\n"), false },
	{ "smuggle_lf_dot_crlf", IN("a\n.\r\n" SMUG "b\r\n.\r\nQUIT\r\n"), 0,
	  BIG, SMTP_DATA_DONE, SMTP_DATA_E_BARE_LF, OUT("a"),
	  LEN("a\n.\r\n" SMUG "b\r\n.\r\n"), false },
	{ "smuggle_crlf_dot_lf", IN("a\r\n.\n" SMUG "b\r\n.\r\nQUIT\r\n"), 0,
	  BIG, SMTP_DATA_DONE, SMTP_DATA_E_BARE_LF, OUT("a\r\n."),
	  LEN("a\r\n.\n" SMUG "b\r\n.\r\n"), false },
	{ "smuggle_crlf_dot_cr", IN("a\r\n.\r" SMUG "b\r\n.\r\nQUIT\r\n"), 0,
	  BIG, SMTP_DATA_DONE, SMTP_DATA_E_BARE_CR, OUT("a\r\n"),
	  LEN("a\r\n.\r" SMUG "b\r\n.\r\n"), false },
	{ "smuggle_cr_dot_crlf", IN("a\r.\r\n" SMUG "b\r\n.\r\nQUIT\r\n"), 0,
	  BIG, SMTP_DATA_DONE, SMTP_DATA_E_BARE_CR, OUT("a"),
	  LEN("a\r.\r\n" SMUG "b\r\n.\r\n"), false },
	{ "smuggle_cr_dot_cr", IN("a\r.\r" SMUG "b\r\n.\r\nQUIT\r\n"), 0, BIG,
	  SMTP_DATA_DONE, SMTP_DATA_E_BARE_CR, OUT("a"),
	  LEN("a\r.\r" SMUG "b\r\n.\r\n"), false },
	{ "smuggle_crlf_dot_cr_crlf",
	  IN("a\r\n.\r\r\n" SMUG "b\r\n.\r\nQUIT\r\n"), 0, BIG, SMTP_DATA_DONE,
	  SMTP_DATA_E_BARE_CR, OUT("a\r\n"),
	  LEN("a\r\n.\r\r\n" SMUG "b\r\n.\r\n"), false },
	{ "smuggle_dot_lf_at_start", IN(".\n" SMUG "b\r\n.\r\nQUIT\r\n"), 0,
	  BIG, SMTP_DATA_DONE, SMTP_DATA_E_BARE_LF, OUT("."),
	  LEN(".\n" SMUG "b\r\n.\r\n"), false },
	{ "smuggle_dot_cr_at_start", IN(".\r" SMUG "b\r\n.\r\nQUIT\r\n"), 0,
	  BIG, SMTP_DATA_DONE, SMTP_DATA_E_BARE_CR, OUT(""),
	  LEN(".\r" SMUG "b\r\n.\r\n"), false },
	{ "smuggle_lf_dot_crlf_waits", IN("a\n.\r\nQUIT\r\n"), 0, BIG,
	  SMTP_DATA_MORE, SMTP_DATA_E_BARE_LF, OUT("a"),
	  LEN("a\n.\r\nQUIT\r\n"), false },
	{ "smuggle_crlf_dot_lf_waits", IN("a\r\n.\nQUIT\r\n"), 0, BIG,
	  SMTP_DATA_MORE, SMTP_DATA_E_BARE_LF, OUT("a\r\n."),
	  LEN("a\r\n.\nQUIT\r\n"), false },
	{ "bare_lf_then_real_end", IN("a\n\r\n.\r\nQUIT\r\n"), 0, BIG,
	  SMTP_DATA_DONE, SMTP_DATA_E_BARE_LF, OUT("a"), LEN("a\n\r\n.\r\n"),
	  false },

	/* SMTP_DATA_NORMALIZE_LF: bare LF becomes CRLF, never ends data */
	{ "normalize_lf_line", IN("a\nb\r\n.\r\n"), N, BIG, SMTP_DATA_DONE,
	  SMTP_DATA_OK, OUT("a\r\nb\r\n"), LEN("a\nb\r\n.\r\n"), false },
	{ "normalize_crlf_dot_lf_is_content", IN("a\r\n.\nb\r\n.\r\nQUIT\r\n"),
	  N, BIG, SMTP_DATA_DONE, SMTP_DATA_OK, OUT("a\r\n.\r\nb\r\n"),
	  LEN("a\r\n.\nb\r\n.\r\n"), false },
	{ "normalize_lf_dot_lf_is_content", IN("a\n.\nb\r\n.\r\n"), N, BIG,
	  SMTP_DATA_DONE, SMTP_DATA_OK, OUT("a\r\n.\r\nb\r\n"),
	  LEN("a\n.\nb\r\n.\r\n"), false },
	{ "normalize_lf_dot_crlf_is_content", IN("a\n.\r\nb\r\n.\r\n"), N, BIG,
	  SMTP_DATA_DONE, SMTP_DATA_OK, OUT("a\r\n.\r\nb\r\n"),
	  LEN("a\n.\r\nb\r\n.\r\n"), false },
	{ "normalize_lf_dot_crlf_waits", IN("a\n.\r\n"), N, BIG, SMTP_DATA_MORE,
	  SMTP_DATA_OK, OUT("a\r\n.\r\n"), LEN("a\n.\r\n"), false },
	{ "normalize_all_lf_never_ends", IN("a\nb\n.\n"), N, BIG,
	  SMTP_DATA_MORE, SMTP_DATA_OK, OUT("a\r\nb\r\n.\r\n"),
	  LEN("a\nb\n.\n"), false },
	{ "normalize_dot_lf_at_start", IN(".\nb\r\n.\r\n"), N, BIG,
	  SMTP_DATA_DONE, SMTP_DATA_OK, OUT(".\r\nb\r\n"), LEN(".\nb\r\n.\r\n"),
	  false },
	{ "normalize_stuffing_after_lf", IN("a\n..b\r\n.\r\n"), N, BIG,
	  SMTP_DATA_DONE, SMTP_DATA_OK, OUT("a\r\n.b\r\n"),
	  LEN("a\n..b\r\n.\r\n"), false },
	{ "normalize_empty_lf_line", IN("\n\r\n.\r\n"), N, BIG, SMTP_DATA_DONE,
	  SMTP_DATA_OK, OUT("\r\n\r\n"), LEN("\n\r\n.\r\n"), false },
	{ "normalize_bare_cr_refused", IN("a\rb\r\n.\r\n"), N, BIG,
	  SMTP_DATA_DONE, SMTP_DATA_E_BARE_CR, OUT("a"), LEN("a\rb\r\n.\r\n"),
	  false },
	{ "normalize_crlf_dot_cr_refused",
	  IN("a\r\n.\r" SMUG "b\r\n.\r\nQUIT\r\n"), N, BIG, SMTP_DATA_DONE,
	  SMTP_DATA_E_BARE_CR, OUT("a\r\n"), LEN("a\r\n.\r" SMUG "b\r\n.\r\n"),
	  false },

	/* size: max_size counts unstuffed octets, CRLF included */
	{ "size_exactly_max", IN("abc\r\n.\r\n"), 0, 5, SMTP_DATA_DONE,
	  SMTP_DATA_OK, OUT("abc\r\n"), LEN("abc\r\n.\r\n"), false },
	{ "size_one_over", IN("abcd\r\n.\r\n"), 0, 5, SMTP_DATA_DONE,
	  SMTP_DATA_E_TOO_BIG, OUT("abcd\r"), LEN("abcd\r\n.\r\n"), false },
	{ "size_counts_unstuffed", IN("..\r\n.\r\n"), 0, 3, SMTP_DATA_DONE,
	  SMTP_DATA_OK, OUT(".\r\n"), LEN("..\r\n.\r\n"), false },
	{ "size_normalized_lf_counts_two", IN("ab\n\r\n.\r\n"), N, 6,
	  SMTP_DATA_DONE, SMTP_DATA_OK, OUT("ab\r\n\r\n"), LEN("ab\n\r\n.\r\n"),
	  false },
	{ "size_normalized_lf_one_over", IN("ab\n\r\n.\r\n"), N, 5,
	  SMTP_DATA_DONE, SMTP_DATA_E_TOO_BIG, OUT("ab\r\n\r"),
	  LEN("ab\n\r\n.\r\n"), false },
	{ "size_zero_empty_message", IN(".\r\n"), 0, 0, SMTP_DATA_DONE,
	  SMTP_DATA_OK, OUT(""), 3, false },
	{ "size_zero_one_empty_line", IN("\r\n.\r\nQUIT\r\n"), 0, 0,
	  SMTP_DATA_DONE, SMTP_DATA_E_TOO_BIG, OUT(""), LEN("\r\n.\r\n"),
	  false },

	/* RFC 5321 4.5.3.1.6: 1000 octets per line, CRLF included */
	{ "line_1000_with_crlf", line998_in, LEN(line998_in), 0, BIG,
	  SMTP_DATA_DONE, SMTP_DATA_OK, line998_out, LEN(line998_out),
	  LEN(line998_in), false },
	{ "line_1001_with_crlf", line999_in, LEN(line999_in), 0, BIG,
	  SMTP_DATA_DONE, SMTP_DATA_E_LINE_TOO_LONG, line998_out, 998,
	  LEN(line999_in), false },
	{ "line_1000_stuffing_dot_not_counted", stuffed998_in,
	  LEN(stuffed998_in), 0, BIG, SMTP_DATA_DONE, SMTP_DATA_OK, line998_out,
	  LEN(line998_out), LEN(stuffed998_in), false },
	{ "line_1000_normalized_lf", lf998_in, LEN(lf998_in), N, BIG,
	  SMTP_DATA_DONE, SMTP_DATA_OK, lf998_out, LEN(lf998_out),
	  LEN(lf998_in), false },
	{ "line_1001_normalized_lf", lf999_in, LEN(lf999_in), N, BIG,
	  SMTP_DATA_DONE, SMTP_DATA_E_LINE_TOO_LONG, lf998_out, 998,
	  LEN(lf999_in), false },
	{ "line_5000_still_finds_end", nocrlf5000_in, LEN(nocrlf5000_in), 0,
	  BIG, SMTP_DATA_DONE, SMTP_DATA_E_LINE_TOO_LONG, line998_out, 998,
	  LEN(nocrlf5000_in) - LEN("QUIT\r\n"), false },

	/* NUL */
	{ "nul_in_line", IN("a\0b\r\n.\r\n"), 0, BIG, SMTP_DATA_DONE,
	  SMTP_DATA_E_NUL, OUT("a"), LEN("a\0b\r\n.\r\n"), false },
	{ "nul_at_line_start", IN("a\r\n\0\r\n.\r\n"), 0, BIG, SMTP_DATA_DONE,
	  SMTP_DATA_E_NUL, OUT("a\r\n"), LEN("a\r\n\0\r\n.\r\n"), false },
	{ "nul_after_dot", IN(".\0\r\n.\r\n"), 0, BIG, SMTP_DATA_DONE,
	  SMTP_DATA_E_NUL, OUT(""), LEN(".\0\r\n.\r\n"), false },

	/* 8-bit */
	{ "eight_bit", IN("caf\xc3\xa9\r\n.\r\n"), 0, BIG, SMTP_DATA_DONE,
	  SMTP_DATA_OK, OUT("caf\xc3\xa9\r\n"), LEN("caf\xc3\xa9\r\n.\r\n"),
	  true },
	{ "eight_bit_after_stuffing_dot", IN("a\r\n.\xff\r\n.\r\n"), 0, BIG,
	  SMTP_DATA_DONE, SMTP_DATA_OK, OUT("a\r\n\xff\r\n"),
	  LEN("a\r\n.\xff\r\n.\r\n"), true },
	{ "eight_bit_in_long_run", IN("0123456789abcdef0123\x80xyz\r\n.\r\n"),
	  0, BIG, SMTP_DATA_DONE, SMTP_DATA_OK,
	  OUT("0123456789abcdef0123\x80xyz\r\n"),
	  LEN("0123456789abcdef0123\x80xyz\r\n.\r\n"), true },
	{ "eight_bit_after_terminator_not_seen", IN("a\r\n.\r\n\xff"), 0, BIG,
	  SMTP_DATA_DONE, SMTP_DATA_OK, OUT("a\r\n"), LEN("a\r\n.\r\n"),
	  false },

	/* RFC 5321 6.3: hop count, in the header only */
	{ "hops_49_taken", hops49_dot, 0, 0, BIG, SMTP_DATA_DONE, SMTP_DATA_OK,
	  hops49, 0, 0, false },
	{ "hops_50_refused", hops50_dot, 0, 0, BIG, SMTP_DATA_DONE,
	  SMTP_DATA_E_TOO_MANY_HOPS, NULL, 0, 0, false },

	/* the first error wins */
	{ "first_error_nul_then_lf", IN("a\0b\nc\r\n.\r\n"), 0, BIG,
	  SMTP_DATA_DONE, SMTP_DATA_E_NUL, OUT("a"), LEN("a\0b\nc\r\n.\r\n"),
	  false },
	{ "first_error_lf_then_nul", IN("a\nb\0\r\n.\r\n"), 0, BIG,
	  SMTP_DATA_DONE, SMTP_DATA_E_BARE_LF, OUT("a"), LEN("a\nb\0\r\n.\r\n"),
	  false },
	{ "first_error_size_then_lf", IN("abcdef\nx\r\n.\r\n"), 0, 3,
	  SMTP_DATA_DONE, SMTP_DATA_E_TOO_BIG, OUT("abc"),
	  LEN("abcdef\nx\r\n.\r\n"), false },
	{ "first_error_cr_then_size", IN("a\rbcdef\r\n.\r\n"), 0, 3,
	  SMTP_DATA_DONE, SMTP_DATA_E_BARE_CR, OUT("a"),
	  LEN("a\rbcdef\r\n.\r\n"), false },
};

#define DATA_NCASES (sizeof(data_cases) / sizeof(data_cases[0]))

/* BDAT (SMTP_DATA_CHUNKED): the octets as sent, ended by
 * smtp_data_finish(). Same rules, no dot framing. */
struct bdat_case {
	const char *name;
	const char *in;
	size_t in_len;
	unsigned flags;
	uint64_t max;
	enum smtp_data_err error;
	const char *out; /* the output; NULL: not checked */
	size_t out_len;
	bool has_8bit;
};

#define C SMTP_DATA_CHUNKED

static const struct bdat_case bdat_cases[] = {
	{ "plain_message", IN("Subject: hi\r\n\r\nHello\r\n"), 0, BIG,
	  SMTP_DATA_OK, OUT("Subject: hi\r\n\r\nHello\r\n"), false },
	{ "dots_are_content", IN("a\r\n.\r\n..b\r\n.\r\nQUIT\r\n"), 0, BIG,
	  SMTP_DATA_OK, OUT("a\r\n.\r\n..b\r\n.\r\nQUIT\r\n"), false },
	{ "empty_message", IN(""), 0, BIG, SMTP_DATA_OK, OUT(""), false },
	{ "last_line_gets_crlf", IN("a\r\nno newline"), 0, BIG, SMTP_DATA_OK,
	  OUT("a\r\nno newline\r\n"), false },
	{ "ends_in_cr", IN("a\r\nb\r"), 0, BIG, SMTP_DATA_E_BARE_CR, NULL, 0,
	  false },
	{ "lone_cr", IN("\r"), 0, BIG, SMTP_DATA_E_BARE_CR, NULL, 0, false },
	/* CVE-2023-51764: refused as DATA refuses them */
	{ "smuggle_cr_dot_crlf", IN("hello\r.\r\n" SMUG), 0, BIG,
	  SMTP_DATA_E_BARE_CR, OUT("hello"), false },
	{ "smuggle_lf_dot_lf", IN("a\n.\n" SMUG), 0, BIG, SMTP_DATA_E_BARE_LF,
	  OUT("a"), false },
	{ "smuggle_crlf_dot_lf", IN("a\r\n.\n" SMUG), 0, BIG,
	  SMTP_DATA_E_BARE_LF, OUT("a\r\n."), false },
	{ "smuggle_lf_dot_crlf", IN("a\n.\r\n" SMUG), 0, BIG,
	  SMTP_DATA_E_BARE_LF, OUT("a"), false },
	{ "smuggle_crlf_dot_cr", IN("a\r\n.\r" SMUG), 0, BIG,
	  SMTP_DATA_E_BARE_CR, OUT("a\r\n."), false },
	{ "bare_cr_mid_line", IN("a\rb\r\n"), 0, BIG, SMTP_DATA_E_BARE_CR,
	  OUT("a"), false },
	{ "nul", IN("a\0b\r\n"), 0, BIG, SMTP_DATA_E_NUL, OUT("a"), false },
	/* router.bare_lf = "normalize" */
	{ "normalize_lf", IN("a\nb\r\n"), N, BIG, SMTP_DATA_OK,
	  OUT("a\r\nb\r\n"), false },
	{ "normalize_lf_dot_lf", IN("a\n.\n" SMUG), N, BIG, SMTP_DATA_OK,
	  OUT("a\r\n.\r\n" SMUG), false },
	{ "normalize_last_lf", IN("a\n"), N, BIG, SMTP_DATA_OK, OUT("a\r\n"),
	  false },
	{ "normalize_bare_cr_refused", IN("a\rb\r\n"), N, BIG,
	  SMTP_DATA_E_BARE_CR, OUT("a"), false },
	/* RFC 5321 4.5.3.1.6 */
	{ "line_1000_with_crlf", line998_out, LEN(line998_out), 0, BIG,
	  SMTP_DATA_OK, line998_out, LEN(line998_out), false },
	{ "line_1001_with_crlf", line999_in, 999 + 2, 0, BIG,
	  SMTP_DATA_E_LINE_TOO_LONG, line998_out, 998, false },
	/* size: the CRLF given to a last line counts */
	{ "size_exactly_max", IN("abc\r\n"), 0, 5, SMTP_DATA_OK, OUT("abc\r\n"),
	  false },
	{ "size_one_over", IN("abcd\r\n"), 0, 5, SMTP_DATA_E_TOO_BIG,
	  OUT("abcd\r"), false },
	{ "size_added_crlf_over", IN("abcd"), 0, 5, SMTP_DATA_E_TOO_BIG,
	  OUT("abcd\r"), false },
	/* 8-bit */
	{ "eight_bit", IN("caf\xc3\xa9\r\n"), 0, BIG, SMTP_DATA_OK,
	  OUT("caf\xc3\xa9\r\n"), true },
	{ "eight_bit_after_error", IN("a\0\xff\r\n"), 0, BIG, SMTP_DATA_E_NUL,
	  OUT("a"), true },
	/* RFC 5321 6.3 */
	{ "hops_49_taken", hops49, 0, 0, BIG, SMTP_DATA_OK, hops49, 0, false },
	{ "hops_50_refused", hops50, 0, 0, BIG, SMTP_DATA_E_TOO_MANY_HOPS, NULL,
	  0, false },
	{ "hops_after_header_not_counted", hops_in_body, 0, 0, BIG,
	  SMTP_DATA_OK, hops_in_body, 0, false },
	{ "hop_name_any_case", IN("rECEIVED: x\r\n\r\n"), 0, BIG, SMTP_DATA_OK,
	  OUT("rECEIVED: x\r\n\r\n"), false },
};

#define BDAT_NCASES (sizeof(bdat_cases) / sizeof(bdat_cases[0]))

static void
data_build_lines(void)
{
	memset(line998_in, 'x', 998);
	memcpy(line998_in + 998, "\r\n.\r\n", sizeof("\r\n.\r\n"));
	memset(line998_out, 'x', 998);
	memcpy(line998_out + 998, "\r\n", sizeof("\r\n"));
	memset(line999_in, 'x', 999);
	memcpy(line999_in + 999, "\r\n.\r\n", sizeof("\r\n.\r\n"));
	stuffed998_in[0] = '.';
	memset(stuffed998_in + 1, 'x', 998);
	memcpy(stuffed998_in + 999, "\r\n.\r\n", sizeof("\r\n.\r\n"));
	memset(lf998_in, 'x', 998);
	memcpy(lf998_in + 998, "\ny\r\n.\r\n", sizeof("\ny\r\n.\r\n"));
	memset(lf998_out, 'x', 998);
	memcpy(lf998_out + 998, "\r\ny\r\n", sizeof("\r\ny\r\n"));
	memset(lf999_in, 'x', 999);
	memcpy(lf999_in + 999, "\ny\r\n.\r\n", sizeof("\ny\r\n.\r\n"));
	memset(nocrlf5000_in, 'x', 5000);
	memcpy(nocrlf5000_in + 5000, "\r\n.\r\nQUIT\r\n",
	       sizeof("\r\n.\r\nQUIT\r\n"));
	hops49[0] = hops50[0] = '\0';
	for (int i = 0; i < SMTP_DATA_HOPS_MAX; i++) {
		if (i < SMTP_DATA_HOPS_MAX - 1)
			strcat(hops49, HOP);
		strcat(hops50, HOP);
	}
	strcat(hops49, HOPS_BODY);
	strcat(hops50, HOPS_BODY);
	snprintf(hops49_dot, sizeof(hops49_dot), "%s.\r\n", hops49);
	snprintf(hops50_dot, sizeof(hops50_dot), "%s.\r\n", hops50);
	strcpy(hops_in_body, "S: s\r\n\r\n");
	for (int i = 0; i < SMTP_DATA_HOPS_MAX; i++)
		strcat(hops_in_body, HOP);
}

/* The built cases give their lengths (0 above) by strlen. */
static size_t
case_len(const char *s, size_t len)
{
	return len ? len : strlen(s);
}

struct data_result {
	int status;
	enum smtp_data_err error;
	size_t consumed;
	bool has_8bit;
	uint64_t total;
	struct buf out;
};

/* Feed in[0..len) in chunks ending at cuts[0..ncuts) (ascending), then at
 * len; stop at DONE as a session would. Chunked (BDAT): then finish. */
static void
data_run(const char *in, size_t len, unsigned flags, uint64_t max,
	 const size_t *cuts, size_t ncuts, struct data_result *r)
{
	struct smtp_data d;
	size_t pos = 0;

	buf_init(&r->out, max);
	smtp_data_init(&d, &r->out, max, flags);
	r->status = SMTP_DATA_MORE;
	for (size_t k = 0; k <= ncuts && r->status == SMTP_DATA_MORE; k++) {
		size_t end = k < ncuts ? cuts[k] : len;
		size_t used = (size_t)-1;

		if (end < pos)
			continue;
		r->status = smtp_data_feed(&d, in + pos, end - pos, &used);
		ck_assert_uint_le(used, end - pos);
		if (r->status == SMTP_DATA_MORE)
			ck_assert_uint_eq(used, end - pos);
		pos += used;
	}
	if (flags & SMTP_DATA_CHUNKED) {
		/* a chunked message takes everything, then its LAST */
		ck_assert_int_eq(r->status, SMTP_DATA_MORE);
		ck_assert_int_eq(smtp_data_finish(&d), d.error);
		r->status = SMTP_DATA_DONE;
	}
	r->error = d.error;
	r->consumed = pos;
	r->has_8bit = d.has_8bit;
	r->total = d.total;
}

static void
data_assert_same(const struct data_result *a, const struct data_result *b,
		 const char *name, const char *how)
{
	ck_assert_msg(a->status == b->status && a->error == b->error &&
			      a->consumed == b->consumed &&
			      a->has_8bit == b->has_8bit &&
			      a->total == b->total,
		      "%s %s: status %d/%d error %d/%d consumed %zu/%zu "
		      "8bit %d/%d total %llu/%llu",
		      name, how, a->status, b->status, a->error, b->error,
		      a->consumed, b->consumed, a->has_8bit, b->has_8bit,
		      (unsigned long long)a->total,
		      (unsigned long long)b->total);
	ck_assert_msg(a->out.len == b->out.len &&
			      (a->out.len == 0 ||
			       memcmp(a->out.data, b->out.data, a->out.len) ==
				       0),
		      "%s %s: output differs (%zu/%zu octets)", name, how,
		      a->out.len, b->out.len);
}

static void
data_assert_out(const struct buf *got, const char *want, size_t want_len,
		const char *name)
{
	if (want == NULL)
		return;
	want_len = case_len(want, want_len);
	ck_assert_msg(got->len == want_len &&
			      (want_len == 0 ||
			       memcmp(got->data, want, want_len) == 0),
		      "%s: output \"%.*s\" (%zu octets), want %zu", name,
		      (int)(got->len > 60 ? 60 : got->len),
		      got->data ? got->data : "", got->len, want_len);
}

START_TEST(test_data_table)
{
	const struct data_case *c = &data_cases[_i];
	size_t in_len = case_len(c->in, c->in_len);
	size_t consumed = c->consumed ? c->consumed : in_len;
	struct data_result r;

	data_run(c->in, in_len, c->flags, c->max, NULL, 0, &r);
	ck_assert_msg(r.status == c->status, "%s: status %d, want %d", c->name,
		      r.status, c->status);
	ck_assert_msg(r.error == c->error, "%s: error %d, want %d", c->name,
		      r.error, c->error);
	ck_assert_msg(r.consumed == consumed, "%s: consumed %zu, want %zu",
		      c->name, r.consumed, consumed);
	ck_assert_msg(r.has_8bit == c->has_8bit, "%s: has_8bit %d", c->name,
		      r.has_8bit);
	data_assert_out(&r.out, c->out, c->out_len, c->name);
	if (c->error == SMTP_DATA_OK)
		ck_assert_uint_eq(r.total, r.out.len);
	buf_free(&r.out);
}
END_TEST

/* Any split of the input gives what the whole input gives. */
/* Any split of in[0..len) gives what the whole gives: in two at every
 * offset, one octet at a time, and (short inputs) in three at every pair
 * of offsets, so a "\r\n." or a "\r" "\n" falls across every boundary. */
static void
data_assert_split_anywhere(const char *in, size_t len, unsigned flags,
			   uint64_t max, const char *name)
{
	struct data_result whole, part;
	size_t *cuts;

	data_run(in, len, flags, max, NULL, 0, &whole);

	for (size_t k = 0; k <= len; k++) {
		data_run(in, len, flags, max, &k, 1, &part);
		data_assert_same(&whole, &part, name, "split in two");
		buf_free(&part.out);
	}

	cuts = calloc(len + 2, sizeof(*cuts));
	ck_assert_ptr_nonnull(cuts);
	for (size_t k = 0; k < len; k++)
		cuts[k] = k + 1;
	data_run(in, len, flags, max, cuts, len, &part);
	data_assert_same(&whole, &part, name, "one octet at a time");
	buf_free(&part.out);

	if (len <= 128) {
		for (size_t j = 0; j <= len; j++) {
			for (size_t k = j; k <= len; k++) {
				cuts[0] = j;
				cuts[1] = k;
				data_run(in, len, flags, max, cuts, 2, &part);
				data_assert_same(&whole, &part, name,
						 "split in three");
				buf_free(&part.out);
			}
		}
	}
	free(cuts);
	buf_free(&whole.out);
}

START_TEST(test_data_split_anywhere_same_result)
	{
		const struct data_case *c = &data_cases[_i];

		data_assert_split_anywhere(c->in, case_len(c->in, c->in_len),
					   c->flags, c->max, c->name);
	}
END_TEST

START_TEST(test_bdat_table)
	{
		const struct bdat_case *c = &bdat_cases[_i];
		struct data_result r;

		data_run(c->in, case_len(c->in, c->in_len), c->flags | C,
			 c->max, NULL, 0, &r);
		ck_assert_msg(r.status == SMTP_DATA_DONE, "%s: status %d",
			      c->name, r.status);
		ck_assert_msg(r.error == c->error, "%s: error %d, want %d",
			      c->name, r.error, c->error);
		ck_assert_msg(r.has_8bit == c->has_8bit, "%s: has_8bit %d",
			      c->name, r.has_8bit);
		data_assert_out(&r.out, c->out, c->out_len, c->name);
		if (c->error == SMTP_DATA_OK)
			ck_assert_uint_eq(r.total, r.out.len);
		buf_free(&r.out);
	}
END_TEST

/* A BDAT chunk may end anywhere: the verdict must not depend on where. */
START_TEST(test_bdat_split_anywhere_same_result)
	{
		const struct bdat_case *c = &bdat_cases[_i];

		data_assert_split_anywhere(c->in, case_len(c->in, c->in_len),
					   c->flags | C, c->max, c->name);
	}
END_TEST

/* The reference model: the input cut at every LF into lines, each judged
 * whole, octet by octet, in the order the octets arrive. Slow and plain;
 * shares no code with the parser. */
static void
ref_fail(struct data_result *r, enum smtp_data_err err)
{
	if (r->error == SMTP_DATA_OK)
		r->error = err;
}

static void
ref_octet(struct data_result *r, uint64_t max, char c)
{
	r->total++;
	if (r->error != SMTP_DATA_OK)
		return;
	if (r->out.len + 1 > max) {
		r->error = SMTP_DATA_E_TOO_BIG;
		return;
	}
	ck_assert_int_eq(buf_append(&r->out, &c, 1), 0);
}

static void
ref_content(struct data_result *r, uint64_t max, const char *p, size_t n)
{
	for (size_t j = 0; j < n; j++) {
		if (p[j] == '\r')
			ref_fail(r, SMTP_DATA_E_BARE_CR);
		if (p[j] == '\0')
			ref_fail(r, SMTP_DATA_E_NUL);
		if (j + 1 > SMTP_TEXT_MAX - 2)
			ref_fail(r, SMTP_DATA_E_LINE_TOO_LONG);
		ref_octet(r, max, p[j]);
	}
}

static void
ref_parse(const char *in, size_t len, unsigned flags, uint64_t max,
	  struct data_result *r)
{
	bool after_crlf = true; /* the DATA command's CRLF */
	size_t start = 0;

	buf_init(&r->out, max);
	r->status = SMTP_DATA_MORE;
	r->error = SMTP_DATA_OK;
	r->consumed = len;
	r->has_8bit = false;
	r->total = 0;
	for (size_t i = 0; i <= len; i++) {
		bool at_end = i == len;
		const char *line = in + start;
		size_t n = i - start;
		bool crlf;

		if (!at_end && in[i] != '\n')
			continue;
		/* a CR before the LF ends the line; at the end it waits */
		crlf = n > 0 && line[n - 1] == '\r';
		if (crlf)
			n--;
		if (!at_end && crlf && after_crlf && n == 1 && line[0] == '.') {
			r->status = SMTP_DATA_DONE;
			r->consumed = i + 1;
			return;
		}
		for (size_t k = start; k < i; k++)
			if ((unsigned char)in[k] >= 0x80)
				r->has_8bit = true;
		if (n == 1 && line[0] == '.') {
			if (at_end)
				return; /* "." or ".\r": undecided */
		} else if (n > 1 && line[0] == '.') {
			line++;
			n--;
		}
		ref_content(r, max, line, n);
		if (at_end)
			return;
		if (!crlf && !(flags & SMTP_DATA_NORMALIZE_LF))
			ref_fail(r, SMTP_DATA_E_BARE_LF);
		ref_octet(r, max, '\r');
		ref_octet(r, max, '\n');
		after_crlf = crlf;
		start = i + 1;
	}
}

static uint64_t
rand_next(uint64_t *s)
{
	/* xorshift64: fixed seed, so a failure reproduces */
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static size_t
rand_input(uint64_t *s, char *out, size_t cap)
{
	static const char *const pieces[] = {
		"a", "text", "0123456789abcdefghij", "\r\n", "\r\n", "\r\n",
		".", "..", "\r", "\n", "\r\n.\r\n", "\r\n.", ".\r", "\n.\n",
		"\xc3\xa9", "\xff",
	};
	size_t npieces = sizeof(pieces) / sizeof(pieces[0]);
	size_t len = 0;
	size_t want = rand_next(s) % 300;

	while (len < want) {
		uint64_t r = rand_next(s);
		const char *p;
		size_t n;

		if (r % 97 == 0) { /* NUL */
			p = "";
			n = 1;
		} else if (r % 89 == 0) { /* a line near the limit */
			n = 990 + (size_t)(r >> 32) % 20;
			if (len + n > cap)
				break;
			memset(out + len, 'y', n);
			len += n;
			continue;
		} else {
			p = pieces[(r >> 8) % npieces];
			n = strlen(p);
		}
		if (len + n > cap)
			break;
		memcpy(out + len, p, n);
		len += n;
	}
	return len;
}

/* Random inputs, whole and in random chunks, against the reference. */
START_TEST(test_data_random_matches_reference)
{
	static char in[4096];
	uint64_t seed = 0x9e3779b97f4a7c15ull;

	for (int iter = 0; iter < 20000; iter++) {
		size_t len = rand_input(&seed, in, sizeof(in));
		unsigned flags = rand_next(&seed) & 1 ? N : 0;
		uint64_t max = rand_next(&seed) % 4 == 0 ?
				       rand_next(&seed) % 400 :
				       BIG;
		struct data_result want, got, chunked;
		size_t cuts[8];
		size_t ncuts = rand_next(&seed) % 8;
		char name[32];

		snprintf(name, sizeof(name), "random #%d", iter);
		ref_parse(in, len, flags, max, &want);
		data_run(in, len, flags, max, NULL, 0, &got);
		data_assert_same(&want, &got, name, "whole");
		for (size_t k = 0; k < ncuts; k++)
			cuts[k] = len ? rand_next(&seed) % (len + 1) : 0;
		for (size_t k = 1; k < ncuts; k++) { /* insertion sort */
			for (size_t j = k; j > 0 && cuts[j - 1] > cuts[j];
			     j--) {
				size_t t = cuts[j];

				cuts[j] = cuts[j - 1];
				cuts[j - 1] = t;
			}
		}
		data_run(in, len, flags, max, cuts, ncuts, &chunked);
		data_assert_same(&want, &chunked, name, "chunked");
		buf_free(&want.out);
		buf_free(&got.out);
		buf_free(&chunked.out);
	}
}
END_TEST

/* The DATA form of a BDAT message: every line start dot-stuffed (after
 * any LF, since DATA drops one leading dot there too), then ".\r\n". */
static size_t
data_stuff(const char *in, size_t len, char *out)
{
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		if (in[i] == '.' && (i == 0 || in[i - 1] == '\n'))
			out[o++] = '.';
		out[o++] = in[i];
	}
	memcpy(out + o, ".\r\n", 3);
	return o + 3;
}

/* The same content by DATA and by BDAT gets the same verdict, output,
 * 8-bit flag and size: DATA's framing is the only difference. */
static void
data_assert_same_both_ways(const char *in, size_t len, unsigned flags,
			   uint64_t max, const char *name)
{
	static char body[8192], stuffed[16384 + 3];
	struct data_result by_data, by_bdat;
	size_t n;

	/* DATA's content always ends in CRLF (the one before ".") */
	ck_assert_uint_le(len + 2, sizeof(body));
	memcpy(body, in, len);
	if (len > 0 &&
	    !(len >= 2 && body[len - 2] == '\r' && body[len - 1] == '\n')) {
		memcpy(body + len, "\r\n", 2);
		len += 2;
	}
	n = data_stuff(body, len, stuffed);
	data_run(stuffed, n, flags, max, NULL, 0, &by_data);
	data_run(body, len, flags | C, max, NULL, 0, &by_bdat);
	ck_assert_msg(by_data.status == SMTP_DATA_DONE && by_data.consumed == n,
		      "%s: DATA form not ended by its \".\" (%d, %zu/%zu)",
		      name, by_data.status, by_data.consumed, n);
	by_data.consumed = by_bdat.consumed;
	data_assert_same(&by_data, &by_bdat, name, "DATA vs BDAT");
	buf_free(&by_data.out);
	buf_free(&by_bdat.out);
}

START_TEST(test_data_and_bdat_agree)
	{
		static char in[4096];
		uint64_t seed = 0x2545f4914f6cdd1dull;

		for (size_t i = 0; i < BDAT_NCASES; i++) {
			const struct bdat_case *c = &bdat_cases[i];

			data_assert_same_both_ways(c->in,
						   case_len(c->in, c->in_len),
						   c->flags, c->max, c->name);
		}
		for (int iter = 0; iter < 20000; iter++) {
			size_t len = rand_input(&seed, in, sizeof(in));
			unsigned flags = rand_next(&seed) & 1 ? N : 0;
			uint64_t max = rand_next(&seed) % 4 == 0 ?
					       rand_next(&seed) % 400 :
					       BIG;
			char name[32];

			snprintf(name, sizeof(name), "random #%d", iter);
			data_assert_same_both_ways(in, len, flags, max, name);
		}
	}
END_TEST

START_TEST(test_bdat_finish_ends_the_message)
	{
		struct smtp_data d;
		struct buf out;
		size_t used = 99;

		buf_init(&out, 100);
		smtp_data_init(&d, &out, 100, C);
		ck_assert_int_eq(smtp_data_feed(&d, IN("a\r\n.\r\n"), &used),
				 SMTP_DATA_MORE);
		ck_assert_uint_eq(used, LEN("a\r\n.\r\n"));
		ck_assert_int_eq(smtp_data_finish(&d), SMTP_DATA_OK);
		ck_assert_int_eq(smtp_data_feed(&d, IN("b\r\n"), &used),
				 SMTP_DATA_DONE);
		ck_assert_uint_eq(used, 0);
		ck_assert_int_eq(smtp_data_finish(&d), SMTP_DATA_OK);
		ck_assert_uint_eq(out.len, LEN("a\r\n.\r\n"));
		buf_free(&out);
	}
END_TEST

START_TEST(test_data_done_takes_nothing_more)
{
	struct smtp_data d;
	struct buf out;
	size_t used = 99;

	buf_init(&out, 100);
	smtp_data_init(&d, &out, 100, 0);
	ck_assert_int_eq(smtp_data_feed(&d, IN("a\r\n.\r\n"), &used),
			 SMTP_DATA_DONE);
	ck_assert_uint_eq(used, LEN("a\r\n.\r\n"));
	ck_assert_int_eq(smtp_data_feed(&d, IN("b\r\n.\r\n"), &used),
			 SMTP_DATA_DONE);
	ck_assert_uint_eq(used, 0);
	ck_assert_int_eq(smtp_data_feed(&d, "", 0, &used), SMTP_DATA_DONE);
	ck_assert_uint_eq(used, 0);
	ck_assert_uint_eq(out.len, 3);
	buf_free(&out);
}
END_TEST

START_TEST(test_data_too_big_keeps_counting_total)
{
	struct smtp_data d;
	struct buf out;
	size_t used;

	buf_init(&out, 4);
	smtp_data_init(&d, &out, 4, 0);
	ck_assert_int_eq(smtp_data_feed(&d, IN("abcdef\r\nghi\r\n.\r\n"),
					&used),
			 SMTP_DATA_DONE);
	ck_assert_int_eq(d.error, SMTP_DATA_E_TOO_BIG);
	ck_assert_uint_eq(d.total, LEN("abcdef\r\nghi\r\n"));
	ck_assert_uint_eq(out.len, 4);
	ck_assert_mem_eq(out.data, "abcd", 4);
	buf_free(&out);
}
END_TEST

/* out may already hold a header; max_size counts the message alone. */
START_TEST(test_data_appends_after_existing_content)
{
	struct smtp_data d;
	struct buf out;
	size_t used;

	buf_init(&out, LEN("Received: x\r\n") + 5);
	ck_assert_int_eq(buf_append(&out, IN("Received: x\r\n")), 0);
	smtp_data_init(&d, &out, 5, 0);
	ck_assert_int_eq(smtp_data_feed(&d, IN("abc\r\n.\r\n"), &used),
			 SMTP_DATA_DONE);
	ck_assert_int_eq(d.error, SMTP_DATA_OK);
	ck_assert_uint_eq(out.len, LEN("Received: x\r\nabc\r\n"));
	ck_assert_mem_eq(out.data, "Received: x\r\nabc\r\n", out.len);
	buf_free(&out);
}
END_TEST

/* A buffer smaller than max_size cannot overflow: the message is too big. */
START_TEST(test_data_small_buffer_is_too_big)
{
	struct smtp_data d;
	struct buf out;
	size_t used;

	buf_init(&out, 3);
	smtp_data_init(&d, &out, 100, 0);
	ck_assert_int_eq(smtp_data_feed(&d, IN("abcdef\r\n.\r\n"), &used),
			 SMTP_DATA_DONE);
	ck_assert_int_eq(d.error, SMTP_DATA_E_TOO_BIG);
	ck_assert_uint_eq(out.len, 3);
	buf_free(&out);
}
END_TEST

START_TEST(test_data_strerror_reply_lines)
{
	static const struct {
		enum smtp_data_err err;
		const char *prefix;
	} want[] = {
		{ SMTP_DATA_E_BARE_LF, "550 5.6.11 " },
		{ SMTP_DATA_E_BARE_CR, "550 5.6.11 " },
		{ SMTP_DATA_E_TOO_BIG, "552 5.3.4 " },
		{ SMTP_DATA_E_LINE_TOO_LONG, "550 5.6.0 " },
		{ SMTP_DATA_E_NUL, "550 5.6.0 " },
		{ SMTP_DATA_E_TOO_MANY_HOPS, "554 5.4.6 " },
	};

	ck_assert_str_eq(smtp_data_strerror(SMTP_DATA_E_TOO_BIG),
			 "552 5.3.4 Message size exceeds fixed limit");
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		const char *s = smtp_data_strerror(want[i].err);

		ck_assert_ptr_nonnull(s);
		ck_assert_msg(strncmp(s, want[i].prefix,
				      strlen(want[i].prefix)) == 0,
			      "%d: \"%s\"", want[i].err, s);
		ck_assert_ptr_null(strpbrk(s, "\r\n"));
		ck_assert_uint_le(strlen(s), 512 - 2); /* RFC 5321 4.5.3.1.5 */
		for (size_t j = 0; j < i; j++)
			ck_assert_str_ne(s, smtp_data_strerror(want[j].err));
	}
	ck_assert_ptr_nonnull(strstr(smtp_data_strerror(SMTP_DATA_E_BARE_LF),
				     "bare LF"));
	ck_assert_ptr_nonnull(strstr(smtp_data_strerror(SMTP_DATA_E_BARE_CR),
				     "bare CR"));
}
END_TEST

static Suite *
data_suite(void)
{
	Suite *s = suite_create("smtp_data");
	TCase *tc;

	data_build_lines();

	tc = tcase_create("table");
	tcase_add_loop_test(tc, test_data_table, 0, (int)DATA_NCASES);
	suite_add_tcase(s, tc);

	tc = tcase_create("split");
	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, test_data_split_anywhere_same_result, 0,
			    (int)DATA_NCASES);
	tcase_add_test(tc, test_data_random_matches_reference);
	suite_add_tcase(s, tc);

	tc = tcase_create("bdat");
	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, test_bdat_table, 0, (int)BDAT_NCASES);
	tcase_add_loop_test(tc, test_bdat_split_anywhere_same_result, 0,
			    (int)BDAT_NCASES);
	tcase_add_test(tc, test_data_and_bdat_agree);
	tcase_add_test(tc, test_bdat_finish_ends_the_message);
	suite_add_tcase(s, tc);

	tc = tcase_create("api");
	tcase_add_test(tc, test_data_done_takes_nothing_more);
	tcase_add_test(tc, test_data_too_big_keeps_counting_total);
	tcase_add_test(tc, test_data_appends_after_existing_content);
	tcase_add_test(tc, test_data_small_buffer_is_too_big);
	tcase_add_test(tc, test_data_strerror_reply_lines);
	suite_add_tcase(s, tc);
	return s;
}

CHECK_MAIN(data_suite)
