/* Unit tests for dmarc-failure-parse.c: ARF fields, the reported
   message's headers, what is refused. */

#include "lib.h"
#include "str.h"
#include "test-dmarc-common.h"
#include "dmarc-failure.h"

static int parse_arf(pool_t pool, const char *text,
		     struct dmarc_failure_report **report_r,
		     const char **error_r)
{
	return dmarc_failure_parse_arf(pool, (const unsigned char *)text,
				       strlen(text), test_default_limits(),
				       report_r, error_r);
}

static void test_failure_recognise(void)
{
	static const char arf[] =
		"Feedback-Type: auth-failure\r\nUser-Agent: x\r\n\r\n";
	static const char late_arf[] =
		"User-Agent: x\nVersion: 1\nFeedback-Type: auth-failure\n";
	static const char headers[] = "From: a@b\nSubject: s\n\nbody";
	static const char body_only[] = "From: a@b\n\nFeedback-Type: x\n";

	test_begin("failure: header blocks and ARF parts recognised");
	test_assert(dmarc_failure_is_arf((const void *)arf, strlen(arf)));
	test_assert(dmarc_failure_is_arf((const void *)late_arf,
					 strlen(late_arf)));
	test_assert(!dmarc_failure_is_arf((const void *)headers,
					  strlen(headers)));
	test_assert(dmarc_failure_is_header_block((const void *)headers,
						  strlen(headers)));
	/* a Feedback-Type in the body is not one */
	test_assert(!dmarc_failure_is_arf((const void *)body_only,
					  strlen(body_only)));
	test_assert(!dmarc_failure_is_header_block((const void *)"<feedback>",
						   10));
	test_assert(!dmarc_failure_is_header_block((const void *)"{\"a\":1}", 7));
	test_assert(!dmarc_failure_is_header_block((const void *)"no colon\n", 9));
	test_end();
}

static void test_failure_fields(void)
{
	static const char arf[] =
		"Feedback-Type: Auth-Failure\n"
		"User-Agent: OpenDMARC-Filter/1.3.2\n"
		"Version: 1\n"
		"Original-Envelope-Id: 8BE2660E72\n"
		"Original-Mail-From: info@example.org\n"
		"Arrival-Date: Tue, 5 Oct 2021 06:36:51 +0200\n"
		"Source-IP: [::ffff:192.0.2.7]\n"
		"Reported-Domain: Example.ORG\n"
		"Reported-Domain: sub.example.org\n"
		"Authentication-Results: mx.example.net;\n"
		"\tdmarc=fail header.from=example.org\n"
		"Auth-Failure: DMARC\n"
		"Identity-Alignment: dkim\n"
		"Delivery-Result: reject\n"
		"DKIM-Domain: example.org\n"
		"DKIM-Selector: s1\n"
		"X-Vendor: v\x07x\n";
	static const char original[] =
		"Received: x\nFrom: =?utf-8?q?J=C3=B6rg?= <j@x>\n"
		"Subject: =?iso-8859-1?q?Gr=FC=DFe?=\nMessage-ID: <1@x>\n"
		"From: second <s@x>\n\nbody\n";
	struct dmarc_failure_report *report;
	const char *error;
	pool_t pool = pool_alloconly_create("test", 4096);

	test_begin("failure: ARF fields, folded, repeated, normalised");
	test_assert(parse_arf(pool, arf, &report, &error) == 0);
	test_assert_strcmp(report->feedback_type, "auth-failure");
	test_assert_strcmp(report->user_agent, "OpenDMARC-Filter/1.3.2");
	test_assert_strcmp(report->version, "1");
	test_assert_strcmp(report->original_envelope_id, "8BE2660E72");
	test_assert_strcmp(report->original_mail_from, "info@example.org");
	test_assert_strcmp(report->arrival_date,
			   "Tue, 5 Oct 2021 06:36:51 +0200");
	test_assert(report->arrival_time == 1633408611);
	test_assert_strcmp(report->source_ip, "192.0.2.7");
	test_assert_strcmp(report->reported_domain,
			   "example.org\nsub.example.org");
	test_assert_strcmp(report->authentication_results,
			   "mx.example.net; dmarc=fail header.from=example.org");
	test_assert_strcmp(report->auth_failure, "dmarc");
	test_assert_strcmp(report->identity_alignment, "dkim");
	test_assert_strcmp(report->delivery_result, "reject");
	test_assert_strcmp(report->dkim_domain, "example.org");
	test_assert_strcmp(report->dkim_selector, "s1");
	test_assert_strcmp(report->other_fields, "X-Vendor: v\xef\xbf\xbdx");
	test_assert(!report->have_original);

	dmarc_failure_parse_original(report, pool, test_default_limits(),
		(const void *)original, strlen(original));
	test_assert(report->have_original);
	test_assert_strcmp(report->orig_from, "Jörg <j@x>");
	test_assert_strcmp(report->orig_subject, "Grüße");
	test_assert_strcmp(report->orig_message_id, "<1@x>");
	test_assert(report->orig_to == NULL);
	pool_unref(&pool);
	test_end();
}

static void test_failure_refused(void)
{
	static const struct {
		const char *arf, *error;
	} cases[] = {
		{ "User-Agent: x\n", "no Feedback-Type" },
		{ "Feedback-Type: abuse\n", "Feedback-Type: abuse" },
		{ "Feedback-Type: auth-failure\nSource-IP: 300.1.1.1\n",
		  "is not an IP address" },
	};
	struct dmarc_failure_report *report;
	const char *error;
	unsigned int i;
	pool_t pool;

	test_begin("failure: refused parts say why");
	for (i = 0; i < N_ELEMENTS(cases); i++) {
		pool = pool_alloconly_create("test", 1024);
		error = NULL;
		test_assert_idx(parse_arf(pool, cases[i].arf, &report,
					  &error) < 0, i);
		test_assert_idx(error != NULL &&
				strstr(error, cases[i].error) != NULL, i);
		pool_unref(&pool);
	}
	test_end();
}

static void test_failure_long_values(void)
{
	struct dmarc_limits limits = *test_default_limits();
	struct dmarc_failure_report *report;
	const char *error;
	string_t *arf = t_str_new(200000);
	unsigned int i;
	pool_t pool;

	test_begin("failure: values cut at dmarcreport_max_value_length");
	limits.max_value_length = 100;
	str_append(arf, "Feedback-Type: auth-failure\nReported-Domain: ");
	for (i = 0; i < 10000; i++)
		str_append(arf, "abcdefghij");
	str_append(arf, "\n");
	/* and many repeats of a field cost no more than one */
	for (i = 0; i < 20000; i++)
		str_append(arf, "Reported-URI: http://example.com/\n");
	pool = pool_alloconly_create("test", 1024);
	test_assert(dmarc_failure_parse_arf(pool, str_data(arf), str_len(arf),
					    &limits, &report, &error) == 0);
	test_assert(strlen(report->reported_domain) == 100);
	test_assert(strlen(report->reported_uri) == 100);
	pool_unref(&pool);
	test_end();
}

static void test_failure_text_report(void)
{
	static const char text[] =
		"A message claiming to be from you has failed the published "
		"DMARC\r\npolicy for your domain.\r\n\r\n"
		"  Sender Domain: example.com\r\n"
		"  Sender IP Address: 198.51.100.3\r\n"
		"  Received Date: Mon, 07 Apr 2025 23:16:09 +0200\r\n"
		"  SPF Alignment: yes\r\n  DKIM Alignment: yes\r\n"
		"  DMARC Results: None, Accept\r\n\r\n"
		"------ This is a copy of the headers that were received "
		"before the error was detected.\r\n\r\n"
		"From: =?UTF-8?Q?J=C3=B6rg?= <j@example.com>\r\n"
		"Message-Id: <m@example.com>\r\n";
	static const char bad_ip[] =
		"  Sender Domain: example.com\n"
		"  Sender IP Address: somewhere\n";
	static const char prose[] =
		"Your message to the Sender Domain: example.com list\n"
		"could not be delivered.\n";
	struct dmarc_failure_report *report;
	const char *error;
	pool_t pool;

	test_begin("failure: text-only reports (Exim's)");
	pool = pool_alloconly_create("test", 1024);
	test_assert(dmarc_failure_is_text_report((const void *)text,
						 strlen(text)));
	test_assert(!dmarc_failure_is_text_report((const void *)prose,
						  strlen(prose)));
	test_assert(dmarc_failure_parse_text(pool, (const void *)text,
		strlen(text), test_default_limits(), &report, &error) == 0);
	test_assert_strcmp(report->feedback_type, "auth-failure");
	test_assert_strcmp(report->auth_failure, "dmarc");
	test_assert_strcmp(report->reported_domain, "example.com");
	test_assert_strcmp(report->source_ip, "198.51.100.3");
	test_assert_strcmp(report->identity_alignment, "dkim, spf");
	test_assert_strcmp(report->other_fields, "DMARC-Results: None, Accept");
	test_assert(report->arrival_time == 1744060569);
	test_assert_strcmp(report->orig_from, "J\xc3\xb6rg <j@example.com>");
	test_assert_strcmp(report->orig_message_id, "<m@example.com>");
	test_assert(report->have_original);
	test_assert(report->user_agent == NULL && report->version == NULL);
	/* a bad address is refused as in an ARF part */
	test_assert(dmarc_failure_parse_text(pool, (const void *)bad_ip,
		strlen(bad_ip), test_default_limits(), &report, &error) < 0);
	test_assert_strcmp(error, "Source-IP \"somewhere\" is not an IP address");
	pool_unref(&pool);
	test_end();
}

int main(void)
{
	static void (*const test_functions[])(void) = {
		test_failure_recognise,
		test_failure_text_report,
		test_failure_fields,
		test_failure_refused,
		test_failure_long_values,
		NULL
	};
	return test_run(test_functions);
}
