/* Check suite for the HTTP injection requests (router/inject.c, parsing
 * and checks; router/inject_build.c, substitutions and messages;
 * router/inject_mime.c, the encodings). Hostile and malformed requests
 * are one table, each naming the field its error must name; the plan,
 * substitutions and header injection have their own tests; each content
 * shape is built and read back with the MIME reader of
 * tests/unit/inject_helper.h (boundaries, part headers, CRLF,
 * quoted-printable, base64, encoded-words) and run through lib/smtp_data.c's content checker; the
 * size bounds are tried at the limit and one past it. Requests are
 * written with ' for " (q() swaps them). */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/buf.h"
#include "lib/smtp_data.h"
#include "router/inject.h"
#include "router/inject_mime.h"
#include "tests/unit/check_helpers.h"
#include "tests/unit/inject_helper.h"

#define SND "'envelope_sender':'bounce@example.com',"
#define RC1 "'recipients':[{'email':'ann@x.example'}],"
#define RC2 SND "'recipients':[{'email':'ann@x.example'},{'email':'b@y.example'}],"
#define FROM "'from':{'email':'news@example.com'},"
#define CT(rest) "'content':{" FROM "'subject':'Hi','text_body':'Hello'" rest "}"
#define REQ(rest) "{" SND RC1 CT(rest) "}"

/* ---- hostile and malformed requests -------------------------------- */

struct bad_case {
	const char *json;
	int rc;
	const char *field;
};

#define A1(x) "'attachments':[" x "]"
static const struct bad_case bad_cases[] = {
	{ "", -EINVAL, "" },
	{ "[1]", -EINVAL, "" },
	{ REQ("") " x", -EINVAL, "" },
	{ "{" SND SND RC1 CT("") "}", -EINVAL, "" },
	{ "{'envelope_sender':'b\xff@example.com'," RC1 CT("") "}", -EINVAL,
	  "" },
	{ "{'envelope_sender':'b\\u0000@example.com'," RC1 CT("") "}",
	  -EINVAL, "" },
	{ "{'envelope_sender':'b\\ud800@example.com'," RC1 CT("") "}",
	  -EINVAL, "" },
	{ "{" SND RC1 CT("") ",'foo':1}", -EINVAL, "foo" },
	{ "{" RC1 CT("") "}", -EINVAL, "envelope_sender" },
	{ "{'envelope_sender':7," RC1 CT("") "}", -EINVAL, "envelope_sender" },
	{ "{'envelope_sender':'no address'," RC1 CT("") "}", -EINVAL,
	  "envelope_sender" },
	{ "{" SND CT("") "}", -EINVAL, "recipients" },
	{ "{" SND "'recipients':{}," CT("") "}", -EINVAL, "recipients" },
	{ "{" SND "'recipients':[]," CT("") "}", -EINVAL, "recipients" },
	{ "{" SND "'recipients':[{'email':'a@b.c'},{'email':'a@b.c'},{'email':"
	  "'a@b.c'},{'email':'a@b.c'},{'email':'a@b.c'},{'email':'a@b.c'},{"
	  "'email':'a@b.c'},{'email':'a@b.c'},{'email':'a@b.c'},{'email':'a@"
	  "b.c'},{'email':'a@b.c'}]," CT("") "}",
	  -EINVAL, "recipients" },
	{ "{" SND "'recipients':['a@b.c']," CT("") "}", -EINVAL,
	  "recipients[0]" },
	{ "{" RC2 CT("") "}", 0, NULL },
	{ "{" SND "'recipients':[{'email':'a@b.c'},{'name':'B'}]," CT("") "}",
	  -EINVAL, "recipients[1].email" },
	{ "{" SND "'recipients':[{'email':'postmaster'}]," CT("") "}", -EINVAL,
	  "recipients[0].email" },
	{ "{" SND "'recipients':[{'email':'a@b.c','cc':'x'}]," CT("") "}",
	  -EINVAL, "recipients[0].cc" },
	{ "{" SND "'recipients':[{'email':'a@b.c','name':'A\\r\\nBcc: x@y.z'}"
	  "]," CT("") "}",
	  -EINVAL, "recipients[0].name" },
	{ "{" SND "'recipients':[{'email':'a@b.c','name':{'x':1}}]," CT("") "}",
	  -EINVAL, "recipients[0].name" },
	{ "{" SND "'recipients':[{'email':'a@b.c','substitutions':[1]}]," CT("")
	  "}",
	  -EINVAL, "recipients[0].substitutions" },
	{ "{" SND "'recipients':[{'email':'a@b.c','substitutions':{'x':{}}}],"
	  CT("") "}",
	  -EINVAL, "recipients[0].substitutions.x" },
	{ "{" SND RC1 "'substitutions':{'flag':true}," CT("") "}", -EINVAL,
	  "substitutions.flag" },
	{ "{" SND RC1 "'substitutions':{'a b':'1'}," CT("") "}", -EINVAL,
	  "substitutions.a b" },
	{ "{" SND "'recipients':[{'email':'a@b.c'}]}", -EINVAL, "content" },
	{ "{" SND RC1 "'content':5}", -EINVAL, "content" },
	{ "{" SND RC1 "'content':''}", -EINVAL, "content" },
	{ "{" SND RC1 "'content':{'subject':'s','text_body':'t'}}", -EINVAL,
	  "content.from" },
	{ "{" SND RC1 "'content':{'from':{'name':'N'},'subject':'s','text_body'"
	  ":'t'}}",
	  -EINVAL, "content.from.email" },
	{ "{" SND RC1 "'content':{'from':{'email':'x@@y'},'subject':'s',"
	  "'text_body':'t'}}",
	  -EINVAL, "content.from.email" },
	{ REQ(",'reply_to':{'email':'<r@x.y>'}"), -EINVAL,
	  "content.reply_to.email" },
	{ "{" SND RC1 "'content':{" FROM "'text_body':'t'}}", -EINVAL,
	  "content.subject" },
	{ "{" SND RC1 "'content':{" FROM "'subject':'a\\nBcc: x@y.z','text_"
	  "body':'t'}}",
	  -EINVAL, "content.subject" },
	{ "{" SND RC1 "'content':{" FROM "'subject':{'a':'b'},'text_body':'t'}"
	  "}",
	  -EINVAL, "content.subject" },
	{ "{" SND RC1 "'content':{" FROM "'subject':'s\\u001b[2J','text_body':"
	  "'t'}}",
	  -EINVAL, "content.subject" },
	{ "{" SND RC1 "'content':{" FROM "'subject':'s'}}", -EINVAL,
	  "content.text_body" },
	{ REQ(",'bogus':1"), -EINVAL, "content.bogus" },
	{ REQ(",'headers':{'X:A':'1'}"), -EINVAL, "content.headers.X:A" },
	{ REQ(",'headers':{'X A':'1'}"), -EINVAL, "content.headers.X A" },
	{ REQ(",'headers':{'Subject':'1'}"), -EINVAL,
	  "content.headers.Subject" },
	{ REQ(",'headers':{'content-type':'text/plain'}"), -EINVAL,
	  "content.headers.content-type" },
	{ REQ(",'headers':{'X-A':'1\\r\\nBcc: evil@x.y'}"), -EINVAL,
	  "content.headers.X-A" },
	{ REQ(",'headers':{'X-A':1}"), -EINVAL, "content.headers.X-A" },
	{ REQ(",'headers':{'To':'a@b.c','to':'d@e.f'}"), -EINVAL,
	  "content.headers.to" },
	{ REQ(",'attachments':{}"), -EINVAL, "content.attachments" },
	{ REQ("," A1("{'data':'!!!!','base64':true}")), -EINVAL,
	  "content.attachments[0].data" },
	{ REQ("," A1("{'data':'QUJD=','base64':true}")), -EINVAL,
	  "content.attachments[0].data" },
	{ REQ("," A1("{'data':'QUI=','base64':'yes'}")), -EINVAL,
	  "content.attachments[0].base64" },
	{ REQ("," A1("{'data':'x'},{'file_name':'a'}")), -EINVAL,
	  "content.attachments[1].data" },
	{ REQ("," A1("{'data':'x','content_type':'text/plain\\r\\nX: y'}")),
	  -EINVAL, "content.attachments[0].content_type" },
	{ REQ("," A1("{'data':'x','content_type':'text/plain; a=\\u0022b'}")),
	  -EINVAL, "content.attachments[0].content_type" },
	{ REQ("," A1("{'data':'x','content_type':'multipart/mixed'}")),
	  -EINVAL, "content.attachments[0].content_type" },
	{ REQ("," A1("{'data':'x','file_name':'a\\n.txt'}")), -EINVAL,
	  "content.attachments[0].file_name" },
	{ REQ("," A1("{'data':'x','content_id':'a>b'}")), -EINVAL,
	  "content.attachments[0].content_id" },
	{ REQ("," A1("{'data':'x','size':1}")), -EINVAL,
	  "content.attachments[0].size" },
	{ "{" SND RC1 CT("") ",'priority':'urgent'}", -EINVAL, "priority" },
	{ "{" SND RC1 CT("") ",'priority':1}", -EINVAL, "priority" },
	{ "{" SND RC1 CT("") ",'tenant':'a b'}", -EINVAL, "tenant" },
	{ "{" SND RC1 CT("") ",'tenant':'a\\u0022b'}", -EINVAL, "tenant" },
	{ "{" SND RC1 CT("") ",'pool':'bad/pool'}", -EINVAL, "pool" },
	{ "{" SND RC1 CT("") ",'pool':'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	  "aaaaaaaaaaaaaaaaaaaaaaaaaa'}",
	  -EINVAL, "pool" },
	/* found when building (inject_check_all) */
	{ "{" SND RC1 "'content':{" FROM "'subject':'Hi {{first}}','text_body'"
	  ":'t'}}",
	  -EINVAL, "content.subject" },
	{ "{" SND "'recipients':[{'email':'a@b.c','substitutions':{'first':'"
	  "A\\r\\nBcc: evil@x.y'}}],'content':{" FROM "'subject':'Hi "
	  "{{first}}','text_body':'t'}}",
	  -EINVAL, "recipients[0].substitutions.first" },
	{ "{" SND RC1 "'substitutions':{'c':'1\\nX-Evil: 1'},'content':{" FROM
	  "'subject':'s','text_body':'t','headers':{'X-C':'{{c}}'}}}",
	  -EINVAL, "substitutions.c" },
	{ "{" SND RC1 "'substitutions':{'n':'N\\rM'},'content':{'from':{'email'"
	  ":'a@b.c','name':'{{n}}'},'subject':'s','text_body':'t'}}",
	  -EINVAL, "substitutions.n" },
	{ "{" SND RC1 "'content':{" FROM "'subject':'s','text_body':'a\\rb'}}",
	  -EINVAL, "content.text_body" },
	{ "{" SND RC1 "'content':'Subject: x\\r\\n\\r\\nbody\\rmore'}", -EINVAL,
	  "content" },
	{ "{" SND RC1 "'substitutions':{'x':'\\r'},'content':'S: x\\n\\n{{x}}'"
	  "}",
	  -EINVAL, "content" },
	{ "{" SND "'recipients':[{'email':'a@b.c','substitutions':{'b':'1'}},{"
	  "'email':'d@e.f'}],'content':'S: {{b}}\\n\\nx'}",
	  -EINVAL, "content" },
};

START_TEST(test_inject_refuses_with_the_field_named)
{
	const struct bad_case *c = &bad_cases[_i];
	struct inject_error e = { "?", "?" };
	int rc = run(c->json, &lim_std, NULL, &e);

	ck_assert_msg(rc == c->rc, "case %d: rc=%d want %d (%s: %s)", _i, rc,
		      c->rc, e.field, e.message);
	if (c->field)
		ck_assert_msg(strcmp(e.field, c->field) == 0,
			      "case %d: field \"%s\" want \"%s\" (%s)", _i,
			      e.field, c->field, e.message);
	if (rc != 0)
		ck_assert_uint_gt(strlen(e.message), 0);
}
END_TEST

/* Refusals that need long inputs: 101 attachments, 1001 header fields,
 * 1001 substitution keys, nesting beyond jansson's depth, a header word
 * that no fold can fit in 998. */
START_TEST(test_inject_refuses_over_counts)
{
	struct buf b;
	struct inject_error e;

	buf_init(&b, BIGBUF);
	buf_printf(&b, REQ(",'headers':{'X-Long':'%01000d'}"), 7);
	ck_assert_int_eq(run(b.data, &lim_std, NULL, &e), -EINVAL);
	ck_assert_str_eq(e.field, "content.headers.X-Long");
	buf_reset(&b);
	buf_printf(&b, "{" SND RC1 "'content':{" FROM
		       "'subject':'s','text_body':'t','attachments':[");
	for (int i = 0; i <= 100; i++)
		buf_printf(&b, "%s{'data':'x'}", i ? "," : "");
	buf_printf(&b, "]}}");
	ck_assert_int_eq(run(b.data, &lim_std, NULL, &e), -EINVAL);
	ck_assert_str_eq(e.field, "content.attachments");
	buf_reset(&b);
	buf_printf(&b, "{" SND RC1 "'content':{" FROM
		       "'subject':'s','text_body':'t','headers':{");
	for (int i = 0; i <= 1000; i++)
		buf_printf(&b, "%s'X-%d':'v'", i ? "," : "", i);
	buf_printf(&b, "}}}");
	ck_assert_int_eq(run(b.data, &lim_std, NULL, &e), -EINVAL);
	ck_assert_str_eq(e.field, "content.headers");
	buf_reset(&b);
	buf_printf(&b, "{" SND RC1 "'substitutions':{");
	for (int i = 0; i <= 1000; i++)
		buf_printf(&b, "%s'k%d':%d", i ? "," : "", i, i);
	buf_printf(&b, "}," CT("") "}");
	ck_assert_int_eq(run(b.data, &lim_std, NULL, &e), -EINVAL);
	ck_assert_str_eq(e.field, "substitutions");
	buf_reset(&b);
	buf_printf(&b, "{" SND RC1 CT("") ",'tenant':");
	for (int i = 0; i < 5000; i++)
		buf_append(&b, "[", 1);
	ck_assert_int_eq(run(b.data, &lim_std, NULL, &e), -EINVAL);
	ck_assert_str_eq(e.field, "");
	buf_free(&b);
}
END_TEST

/* ---- accessors and the plan ---------------------------------------- */

START_TEST(test_inject_reads_routing_and_null_sender)
{
	struct inject_req *r = run_ok(
		"{'envelope_sender':'','recipients':[{'email':'ü@exämple.de'},"
		"{'email':'b@y.example'}]," CT("") ",'pool':'bulk-1','priority'"
		":'HIGH','tenant':'acme','substitutions':null}");
	struct inject_req *p = run_ok(
		"{" SND RC1 CT("") ",'pool':'P.-_456789012345678901234567890123"
		"456789012345678901234567890123'}");

	ck_assert_uint_eq(strlen(inject_pool(p)), 64);
	inject_free(p);

	ck_assert_str_eq(inject_sender(r), "");
	ck_assert_str_eq(inject_pool(r), "bulk-1");
	ck_assert_str_eq(inject_priority(r), "high");
	ck_assert_str_eq(inject_tenant(r), "acme");
	ck_assert(inject_smtputf8(r));
	ck_assert_uint_eq(inject_n_rcpts(r), 2);
	ck_assert_str_eq(inject_rcpt(r, 1), "b@y.example");
	inject_free(r);
	r = run_ok(REQ(""));
	ck_assert_ptr_null(inject_pool(r));
	ck_assert_ptr_null(inject_priority(r));
	ck_assert_ptr_null(inject_tenant(r));
	ck_assert(!inject_smtputf8(r));
	inject_free(r);
	r = run_ok(REQ(",'headers':{'To':'Grüße <a@b.c>'}"));
	ck_assert(inject_smtputf8(r));
	inject_free(r);
	r = run_ok("{" SND RC1 "'substitutions':{'n':'Zo\\u00eb'},"
		   CT(",'headers':{'To':'{{n}} <a@b.c>'}") "}");
	ck_assert(inject_smtputf8(r));
	inject_free(r);
	inject_free(NULL);
}
END_TEST

struct plan_case {
	const char *json;
	size_t n_messages;
};

#define RAW "'content':'Subject: hi {{a}}\\n\\nbody\\n'"
#define R3 "'recipients':[{'email':'a@b.c'},{'email':'d@e.f'},{'email':'g@h.i'"
static const struct plan_case plan_cases[] = {
	/* raw, no per-recipient substitutions: one message */
	{ "{" SND R3 "}],'substitutions':{'a':1}," RAW "}", 1 },
	/* an empty object is none */
	{ "{" SND R3 ",'substitutions':{}}],'substitutions':{'a':1}," RAW "}",
	  1 },
	/* one recipient's own substitutions: one message each */
	{ "{" SND R3 ",'substitutions':{'a':2}}],'substitutions':{'a':1}," RAW
	  "}",
	  3 },
	/* structured without To: one each */
	{ "{" SND R3 "}]," CT("") "}", 3 },
	/* structured with To: shared */
	{ "{" SND R3 "}]," CT(",'headers':{'To':'list@x.example'}") "}", 1 },
	/* ... unless a recipient has its own substitutions */
	{ "{" SND R3 ",'substitutions':{'a':'x'}}],"
	  CT(",'headers':{'to':'list@x.example'}") "}",
	  3 },
};

START_TEST(test_inject_plans_one_or_one_each)
{
	struct inject_req *r = run_ok(plan_cases[_i].json);
	size_t n = inject_n_messages(r), total = 0;

	ck_assert_uint_eq(n, plan_cases[_i].n_messages);
	for (size_t m = 0; m < n; m++) {
		const size_t *idx;
		size_t k = inject_message_rcpts(r, m, &idx);

		for (size_t j = 0; j < k; j++)
			ck_assert_uint_eq(idx[j], total + j);
		total += k;
	}
	ck_assert_uint_eq(total, 3);
	inject_free(r);
}
END_TEST

/* ---- substitutions ------------------------------------------------- */

START_TEST(test_inject_substitutes_markers)
{
	struct inject_req *r = run_ok(
		"{" SND "'recipients':[{'email':'a@b.c','substitutions':{'a':'"
		"A','n':-0.25}},{'email':'d@e.f','substitutions':{'n':0}}],"
		"'substitutions':{'a':'G','"
		"b':'{{a}}','i':42,'r':1.5,'e':1e300,'k.-_9':'K'},'content':'S"
		": {{a}}|{{ a }}|{{\\ta\\t}}|{{b}}|{{i}}|{{r}}|{{e}}|{{n}}|{{k"
		".-_9}}\\n\\n{{ a b }}{{}}{{{a}}}{{a}{{ {{a}} } }'}");
	struct buf b;

	ck_assert_uint_eq(inject_n_messages(r), 2);
	build(r, 0, &b);
	ck_assert_str_eq(b.data, "S: A|A|A|{{a}}|42|1.5|1e+300|-0.25|K\r\n\r\n"
				 "{{ a b }}{{}}{A}{{a}{{ A } }\r\n");
	buf_free(&b);
	inject_free(r);
}
END_TEST

START_TEST(test_inject_unknown_key_names_the_recipient)
{
	struct inject_error e;
	int rc = run("{" SND "'recipients':[{'email':'a@b.c','substitutions':{"
		     "'x':'1'}},{'email':'d@e.f','substitutions':{'y':'2'}}],"
		     "'content':{" FROM "'subject':'s','text_body':'{{x}}'}}",
		     &lim_std, NULL, &e);

	ck_assert_int_eq(rc, -EINVAL);
	ck_assert_str_eq(e.field, "content.text_body");
	ck_assert_ptr_nonnull(strstr(e.message, "\"x\""));
	ck_assert_ptr_nonnull(strstr(e.message, "recipients[1]"));
}
END_TEST

/* CR or LF brought into a header field by a substitution, through each
 * field that takes them, and a body that may take them. */
START_TEST(test_inject_refuses_header_injection_by_substitution)
{
	static const char *const where[] = {
		"'subject':'{{v}}','text_body':'t'",
		"'subject':'s','text_body':'t','headers':{'X-A':'a {{v}}'}",
		"'subject':'s','text_body':'t','headers':{'To':'{{v}}'}",
	};
	static const char *const field[] = { "content.subject",
					     "content.headers.X-A",
					     "content.headers.To" };
	char json[512];
	struct inject_error e;
	struct inject_req *r;

	for (size_t i = 0; i < 3; i++) {
		snprintf(json, sizeof(json),
			 "{" SND "'recipients':[{'email':'a@b.c','substitut"
			 "ions':{'v':'x\\nBcc: e@v.il'}}],'content':{" FROM
			 "%s}}",
			 where[i]);
		ck_assert_int_eq(run(json, &lim_std, NULL, &e), -EINVAL);
		ck_assert_str_eq(e.field, "recipients[0].substitutions.v");
		ck_assert_ptr_nonnull(strstr(e.message, field[i]));
	}
	r = run_ok("{" SND "'recipients':[{'email':'a@b.c','substitutions':{"
		   "'v':'x\\nBcc: e@v.il'}}],'content':{" FROM
		   "'subject':'s','text_body':'{{v}}'}}");
	inject_free(r);
}
END_TEST

/* ---- MIME shapes --------------------------------------------------- */

START_TEST(test_inject_builds_text_only)
{
	struct inject_req *r = run_ok(
		"{" SND "'recipients':[{'email':'ann@x.example','name':'Ann "
		"Lee'}],'content':{'from':{'email':'news@example.com','name':"
		"'Ann \\u0022the\\u0022 \\\\ Lee'},'reply_to':{'email':'h@e.x'"
		"},'subject':'Hi','text_body':'line 1\\nline 2','headers':{'X-"
		"Campaign':'42'}}}");
	struct buf b;
	struct ent m;

	build(r, 0, &b);
	assert_wire_ok(&b);
	m = ent_of(b.data, b.len);
	ck_assert_str_eq(hdr(&m, "Date"), "Tue, 14 Nov 2023 22:13:20 +0000");
	ck_assert_str_eq(hdr(&m, "From"),
			 "\"Ann \\\"the\\\" \\\\ Lee\" <news@example.com>");
	ck_assert_str_eq(hdr(&m, "To"), "Ann Lee <ann@x.example>");
	ck_assert_str_eq(hdr(&m, "Reply-To"), "h@e.x");
	ck_assert_str_eq(hdr(&m, "Subject"), "Hi");
	ck_assert_str_eq(hdr(&m, "Message-ID"), "<" QID "@" HOST ">");
	ck_assert_str_eq(hdr(&m, "MIME-Version"), "1.0");
	ck_assert_str_eq(hdr(&m, "X-Campaign"), "42");
	ck_assert_str_eq(hdr(&m, "Content-Type"), "text/plain; charset=utf-8");
	ck_assert_str_eq(hdr(&m, "Content-Transfer-Encoding"), "7bit");
	ck_assert_uint_eq(m.body_len, strlen("line 1\r\nline 2\r\n"));
	ck_assert_int_eq(memcmp(m.body, "line 1\r\nline 2\r\n", m.body_len), 0);
	buf_free(&b);
	inject_free(r);
}
END_TEST

START_TEST(test_inject_builds_html_only_and_alternative)
{
	struct inject_req *r = run_ok(REQ(",'html_body':'<p>Hi</p>'"));
	struct inject_req *h = run_ok("{" SND RC1 "'content':{" FROM "'subject"
				      "':'s','html_body':'<b>x</b>\\n'}}");
	struct ent m, p[4];
	struct buf b;

	build(h, 0, &b);
	assert_wire_ok(&b);
	m = ent_of(b.data, b.len);
	ck_assert_str_eq(hdr(&m, "Content-Type"), "text/html; charset=utf-8");
	ck_assert_uint_eq(m.body_len, 10);
	buf_free(&b);
	build(r, 0, &b);
	assert_wire_ok(&b);
	m = ent_of(b.data, b.len);
	ck_assert_ptr_nonnull(strstr(hdr(&m, "Content-Type"),
				     "multipart/alternative;"));
	ck_assert_uint_eq(parts(&m, boundary(hdr(&m, "Content-Type")), p, 4),
			  2);
	ck_assert_str_eq(hdr(&p[0], "Content-Type"),
			 "text/plain; charset=utf-8");
	ck_assert_uint_eq(p[0].body_len, 5);
	ck_assert_int_eq(memcmp(p[0].body, "Hello", 5), 0);
	ck_assert_str_eq(hdr(&p[1], "Content-Type"), "text/html; charset=utf-8");
	ck_assert_int_eq(memcmp(p[1].body, "<p>Hi</p>", p[1].body_len), 0);
	buf_free(&b);
	inject_free(r);
	inject_free(h);
}
END_TEST

START_TEST(test_inject_builds_mixed_related_and_base64)
{
	struct inject_req *r = run_ok(REQ(
		",'html_body':'<img src=\\u0022cid:logo\\u0022>',"
		"'attachments':[{'data':'aGVsbG8gd29ybGQ=','base64':true,"
		"'content_type':'text/plain','file_name':'r\\u00e9sum\\u00e9 "
		"\\u0022q\\u0022.txt'},{'data':'iVBORw0KGgo=','base64':true,"
		"'content_type':'image/png','content_id':'logo'},{'data':'"
		"0123456789012345678901234567890123456789012345678901234567890"
		"123456789'}]"));
	struct ent m, top[4], alt[4], rel[4];
	char dec[256];
	struct buf b;

	build(r, 0, &b);
	assert_wire_ok(&b);
	m = ent_of(b.data, b.len);
	ck_assert_ptr_nonnull(strstr(hdr(&m, "Content-Type"), "multipart/mixed"));
	ck_assert_uint_eq(parts(&m, boundary(hdr(&m, "Content-Type")), top, 4),
			  3);
	ck_assert_ptr_nonnull(strstr(hdr(&top[0], "Content-Type"),
				     "multipart/alternative"));
	ck_assert_uint_eq(
		parts(&top[0], boundary(hdr(&top[0], "Content-Type")), alt, 4),
		2);
	ck_assert_ptr_nonnull(strstr(hdr(&alt[1], "Content-Type"),
				     "multipart/related; type=\"text/html\""));
	ck_assert_uint_eq(
		parts(&alt[1], boundary(hdr(&alt[1], "Content-Type")), rel, 4),
		2);
	ck_assert_str_eq(hdr(&rel[1], "Content-Type"), "image/png");
	ck_assert_str_eq(hdr(&rel[1], "Content-ID"), "<logo>");
	ck_assert_str_eq(hdr(&rel[1], "Content-Disposition"), "inline");
	ck_assert_uint_eq(unb64(rel[1].body, rel[1].body_len, dec), 8);
	ck_assert_int_eq(memcmp(dec, "\x89PNG\r\n\x1a\n", 8), 0);
	/* RFC 2231 for a name with non-ASCII and quotes */
	ck_assert_str_eq(hdr(&top[1], "Content-Disposition"),
			 "attachment; filename*=utf-8''r%C3%A9sum%C3%A9%20%22"
			 "q%22.txt");
	ck_assert_str_eq(hdr(&top[1], "Content-Transfer-Encoding"), "base64");
	ck_assert_uint_eq(unb64(top[1].body, top[1].body_len, dec), 11);
	ck_assert_int_eq(memcmp(dec, "hello world", 11), 0);
	ck_assert_str_eq(hdr(&top[2], "Content-Type"),
			 "application/octet-stream");
	ck_assert_uint_eq(unb64(top[2].body, top[2].body_len, dec), 70);
	ck_assert_int_eq(memcmp(dec, "0123456789", 10), 0);
	ck_assert_ptr_nonnull(memmem(top[2].body, top[2].body_len, "\r\n", 2));
	buf_free(&b);
	inject_free(r);
}
END_TEST

/* An inline part without HTML to show it goes with the attachments. */
START_TEST(test_inject_builds_inline_without_html_as_attachment)
{
	struct inject_req *r = run_ok(
		REQ(",'attachments':[{'data':'x','content_id':'c1@x'}]"));
	struct ent m, p[3];
	struct buf b;

	build(r, 0, &b);
	assert_wire_ok(&b);
	m = ent_of(b.data, b.len);
	ck_assert_uint_eq(parts(&m, boundary(hdr(&m, "Content-Type")), p, 3), 2);
	ck_assert_str_eq(hdr(&p[0], "Content-Type"), "text/plain; charset=utf-8");
	ck_assert_str_eq(hdr(&p[1], "Content-ID"), "<c1@x>");
	buf_free(&b);
	inject_free(r);
}
END_TEST

START_TEST(test_inject_encodes_qp_and_words)
{
	struct inject_req *r;
	struct buf b, body;
	struct ent m;
	char dec[4096];
	size_t n;

	buf_init(&body, BIGBUF);
	buf_printf(&body, "{" SND "'recipients':[{'email':'a@b.c','name':'Zo"
			  "\\u00eb \\u00c5str\\u00f6m'}],'content':{'from':{'em"
			  "ail':'n@e.x','name':'\\u65e5\\u672c\\u8a9e'},'subj"
			  "ect':'");
	for (int i = 0; i < 12; i++)
		buf_printf(&body, "Gr\\u00fc\\u00dfe \\ud83d\\ude00 =? ");
	buf_printf(&body, "','text_body':'caf\\u00e9 = ok \\nend \\n");
	for (int i = 0; i < 120; i++)
		buf_printf(&body, "x\\u00e9");
	buf_printf(&body, "'}}");
	r = run_ok(body.data);
	build(r, 0, &b);
	assert_wire_ok(&b);
	m = ent_of(b.data, b.len);
	for (size_t i = 0; i < m.hdr_len; i++)
		ck_assert((unsigned char)m.hdr[i] < 0x80);
	buf_reset(&body);
	for (int i = 0; i < 12; i++)
		buf_printf(&body, "Grüße 😀 =? ");
	ck_assert_str_eq(unword(hdr(&m, "Subject")), body.data);
	ck_assert_str_eq(unword(hdr(&m, "To")), "Zoë Åström <a@b.c>");
	ck_assert_str_eq(unword(hdr(&m, "From")), "日本語 <n@e.x>");
	ck_assert_str_eq(hdr(&m, "Content-Transfer-Encoding"),
			 "quoted-printable");
	n = unqp(m.body, m.body_len, dec);
	buf_reset(&body);
	buf_printf(&body, "café = ok \r\nend \r\n");
	for (int i = 0; i < 120; i++)
		buf_printf(&body, "xé");
	/* the message ends with CRLF: the body gets one */
	buf_append(&body, "\r\n", 2);
	ck_assert_uint_eq(n, body.len);
	ck_assert_int_eq(memcmp(dec, body.data, n), 0);
	/* header lines within 78 when they can be */
	for (const char *l = m.hdr; l < m.hdr + m.hdr_len;) {
		const char *e = memmem(l, m.hdr_len - (size_t)(l - m.hdr), "\r\n",
				       2);

		ck_assert_uint_le((size_t)(e - l), 78);
		l = e + 2;
	}
	buf_free(&b);
	buf_free(&body);
	inject_free(r);
}
END_TEST

/* A subject word or a quoted name too long for a line goes as
 * encoded-words, which fold. */
START_TEST(test_inject_long_words_become_encoded_words)
{
	struct inject_req *r;
	struct buf b, json, want;
	struct ent m;

	buf_init(&json, BIGBUF);
	buf_init(&want, BIGBUF);
	buf_printf(&json, "{" SND RC1 "'content':{" FROM "'reply_to':{'email'"
			  ":'h@e.x','name':'Long, %0950d'},'subject':'%01000d',"
			  "'text_body':'t'}}",
		   1, 2);
	r = run_ok(json.data);
	build(r, 0, &b);
	assert_wire_ok(&b);
	m = ent_of(b.data, b.len);
	buf_printf(&want, "%01000d", 2);
	ck_assert_str_eq(unword(hdr(&m, "Subject")), want.data);
	buf_reset(&want);
	buf_printf(&want, "Long, %0950d <h@e.x>", 1);
	ck_assert_str_eq(unword(hdr(&m, "Reply-To")), want.data);
	buf_free(&b);
	buf_free(&json);
	buf_free(&want);
	inject_free(r);
}
END_TEST

/* A body holding the very boundary the qid gives is not sent as 7bit:
 * quoted-printable cannot hold one. */
START_TEST(test_inject_boundary_never_in_the_content)
{
	struct inject_req *r = run_ok(REQ(",'html_body':'h'"));
	char bnd[128], json[512], dec[512];
	struct buf b;
	struct ent m, p[3];

	build(r, 0, &b);
	m = ent_of(b.data, b.len);
	snprintf(bnd, sizeof(bnd), "%s", boundary(hdr(&m, "Content-Type")));
	ck_assert_uint_eq(strlen(bnd), 24);
	buf_free(&b);
	inject_free(r);
	snprintf(json, sizeof(json),
		 "{" SND RC1 "'content':{" FROM "'subject':'s','text_body':'"
		 "--%s\\n--%s--','html_body':'h'}}",
		 bnd, bnd);
	r = run_ok(json);
	build(r, 0, &b);
	assert_wire_ok(&b);
	m = ent_of(b.data, b.len);
	ck_assert_str_eq(boundary(hdr(&m, "Content-Type")), bnd);
	ck_assert_uint_eq(parts(&m, bnd, p, 3), 2);
	ck_assert_str_eq(hdr(&p[0], "Content-Transfer-Encoding"),
			 "quoted-printable");
	ck_assert_uint_eq(unqp(p[0].body, p[0].body_len, dec),
			  2 * strlen(bnd) + 8);
	ck_assert_int_eq(memcmp(dec + 2, bnd, strlen(bnd)), 0);
	buf_free(&b);
	inject_free(r);
}
END_TEST

START_TEST(test_inject_builds_raw_content)
{
	struct inject_req *r = run_ok("{" RC2 "'content':'Subject: x\\n"
				      "From: a@b.c\\r\\n\\nbody'}");
	struct buf b;

	ck_assert_uint_eq(inject_n_messages(r), 1);
	buf_init(&b, BIGBUF);
	buf_append(&b, "prefix", 6);
	ck_assert_int_eq(inject_build(r, 0, QID, HOST, NOW, &b, NULL), 0);
	ck_assert_str_eq(b.data,
			 "prefixSubject: x\r\nFrom: a@b.c\r\n\r\nbody\r\n");
	buf_free(&b);
	inject_free(r);
}
END_TEST

/* ---- the encoders on their own ------------------------------------- */

START_TEST(test_inject_mime_base64_round_trip)
{
	unsigned char in[300], *out;
	size_t len;
	const char *why;
	struct buf b;

	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (unsigned char)(i * 7);
	for (size_t n = 0; n < sizeof(in); n += 29) {
		buf_init(&b, BIGBUF);
		ck_assert_int_eq(inject_mime_base64(&b, in, n), 0);
		ck_assert_int_eq(inject_mime_unbase64(b.data ? b.data : "",
						      b.len, &out, &len, &why),
				 0);
		ck_assert_uint_eq(len, n);
		ck_assert_int_eq(memcmp(out, in, n), 0);
		free(out);
		buf_free(&b);
	}
	ck_assert_int_eq(inject_mime_unbase64("QQ==", 4, &out, &len, &why), 0);
	ck_assert_uint_eq(len, 1);
	free(out);
	ck_assert_int_eq(inject_mime_unbase64("QR==", 4, &out, &len, &why),
			 -EINVAL);
	ck_assert_int_eq(inject_mime_unbase64("QQ=A", 4, &out, &len, &why),
			 -EINVAL);
	ck_assert_int_eq(inject_mime_unbase64("Q===", 4, &out, &len, &why),
			 -EINVAL);
}
END_TEST

/* ---- bounds -------------------------------------------------------- */

/* One message: built at exactly max_message_size, refused one under. */
static void
check_size_bound(const char *json)
{
	struct inject_limits lim = { 1000000, 10 };
	struct inject_req *r;
	struct inject_error e;
	struct buf b;
	size_t size;

	ck_assert_int_eq(run(json, &lim, &r, &e), 0);
	build(r, 0, &b);
	size = b.len;
	buf_free(&b);
	inject_free(r);
	lim.max_message_size = size;
	ck_assert_int_eq(run(json, &lim, &r, &e), 0);
	build(r, 0, &b);
	ck_assert_uint_eq(b.len, size);
	buf_free(&b);
	inject_free(r);
	lim.max_message_size = size - 1;
	ck_assert_int_eq(run(json, &lim, NULL, &e), -E2BIG);
	ck_assert_str_eq(e.field, "content");
}

START_TEST(test_inject_message_size_at_the_limit)
{
	check_size_bound(REQ(",'html_body':'<p>\\u00e9</p>',"
			     "'attachments':[{'data':'abc'}]"));
	check_size_bound("{" SND RC1 "'content':'Subject: s\\n\\nbody'}");
	check_size_bound("{" SND RC1 "'substitutions':{'x':'xxxxxxxxxx'},"
			 "'content':'S: s\\n\\n{{x}}{{x}}{{x}}{{x}}'}");
}
END_TEST

/* The plan together: four equal messages fit 4 x max, five do not. */
START_TEST(test_inject_total_size_at_the_limit)
{
	const char *four = "{" SND "'recipients':[{'email':'a1@b.c'},{'email'"
			   ":'a2@b.c'},{'email':'a3@b.c'},{'email':'a4@b.c'}]"
			   "," CT("") "}";
	const char *five = "{" SND "'recipients':[{'email':'a1@b.c'},{'email'"
			   ":'a2@b.c'},{'email':'a3@b.c'},{'email':'a4@b.c'},"
			   "{'email':'a5@b.c'}]," CT("") "}";
	struct inject_limits lim = { 1000000, 10 };
	struct inject_req *r;
	struct inject_error e;
	struct buf b;

	ck_assert_int_eq(run(four, &lim, &r, &e), 0);
	build(r, 0, &b);
	lim.max_message_size = b.len;
	buf_free(&b);
	inject_free(r);
	ck_assert_int_eq(run(four, &lim, NULL, &e), 0);
	ck_assert_int_eq(run(five, &lim, NULL, &e), -E2BIG);
	ck_assert_str_eq(e.field, "recipients");
	lim.max_message_size--;
	ck_assert_int_eq(run(four, &lim, NULL, &e), -E2BIG);
	ck_assert_str_eq(e.field, "content");
}
END_TEST

/* Out's own bound counts too, and a failed build leaves out as it was;
 * a substitution cannot blow a message past the limit. */
START_TEST(test_inject_build_respects_out_and_restores_it)
{
	struct inject_req *r = run_ok(REQ(""));
	struct inject_error e;
	struct buf b;

	buf_init(&b, 40);
	buf_append(&b, "keep", 4);
	ck_assert_int_eq(inject_build(r, 0, QID, HOST, NOW, &b, &e), -E2BIG);
	ck_assert_str_eq(e.field, "content");
	ck_assert_uint_eq(b.len, 4);
	ck_assert_str_eq(b.data, "keep");
	buf_free(&b);
	inject_free(r);
	ck_assert_int_eq(
		run("{" SND RC1 "'substitutions':{'x':'0123456789012345678901"
		    "2345678901234567890123456789'},'content':{" FROM "'subjec"
		    "t':'s','text_body':'{{x}}{{x}}{{x}}{{x}}{{x}}{{x}}{{x}}{{"
		    "x}}'}}",
		    &(struct inject_limits){ 500, 1 }, NULL, &e),
		-E2BIG);
	ck_assert_str_eq(e.field, "content");
}
END_TEST

static Suite *
inject_suite(void)
{
	Suite *s = suite_create("inject");
	TCase *tc;

	tc = tcase_create("parse");
	tcase_add_loop_test(tc, test_inject_refuses_with_the_field_named, 0,
			    sizeof(bad_cases) / sizeof(bad_cases[0]));
	tcase_add_test(tc, test_inject_refuses_over_counts);
	tcase_add_test(tc, test_inject_reads_routing_and_null_sender);
	tcase_add_loop_test(tc, test_inject_plans_one_or_one_each, 0,
			    sizeof(plan_cases) / sizeof(plan_cases[0]));
	suite_add_tcase(s, tc);

	tc = tcase_create("substitute");
	tcase_add_test(tc, test_inject_substitutes_markers);
	tcase_add_test(tc, test_inject_unknown_key_names_the_recipient);
	tcase_add_test(tc, test_inject_refuses_header_injection_by_substitution);
	suite_add_tcase(s, tc);

	tc = tcase_create("build");
	tcase_add_test(tc, test_inject_builds_text_only);
	tcase_add_test(tc, test_inject_builds_html_only_and_alternative);
	tcase_add_test(tc, test_inject_builds_mixed_related_and_base64);
	tcase_add_test(tc, test_inject_builds_inline_without_html_as_attachment);
	tcase_add_test(tc, test_inject_encodes_qp_and_words);
	tcase_add_test(tc, test_inject_long_words_become_encoded_words);
	tcase_add_test(tc, test_inject_boundary_never_in_the_content);
	tcase_add_test(tc, test_inject_builds_raw_content);
	tcase_add_test(tc, test_inject_mime_base64_round_trip);
	suite_add_tcase(s, tc);

	tc = tcase_create("bounds");
	tcase_add_test(tc, test_inject_message_size_at_the_limit);
	tcase_add_test(tc, test_inject_total_size_at_the_limit);
	tcase_add_test(tc, test_inject_build_respects_out_and_restores_it);
	suite_add_tcase(s, tc);
	return s;
}

CHECK_MAIN(inject_suite)
