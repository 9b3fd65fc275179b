/* Unit tests for dmarc-parse.c: the real-world corpus, field values,
   the accept/reject decisions, and hostile input. */

#include "lib.h"
#include "array.h"
#include "buffer.h"
#include "str.h"
#include "ioloop.h"
#include "istream.h"
#include "test-dmarc-common.h"
#include "dmarc-parse.h"

#include <stdio.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <archive.h>
#include <archive_entry.h>

/* One whole parse, summarised. */
struct parse_result {
	int ret;		/* 0 accepted, -1 rejected */
	const char *error;
	unsigned int records;
	uint64_t count_sum;
	const char *warnings;	/* all joined by "; " */
	const char *anomalies;	/* all joined by "; " */
	/* the first record's */
	const char *disposition, *dkim, *spf;
};

/* A parser over what func reads, as the old read callbacks were called:
   16 KiB at a time. */
static struct dmarc_parser *
test_parser_init(test_read_func_t *func, void *context,
		 const struct dmarc_limits *limits)
{
	struct istream *input = test_istream_create_func(func, context, 16384);
	struct dmarc_parser *parser = dmarc_parser_init(input, limits);

	i_stream_unref(&input);
	return parser;
}

static void
parse_stream(test_read_func_t *read_func, void *context,
	     const struct dmarc_limits *limits, struct parse_result *res_r)
{
	struct dmarc_parser *parser;
	const struct dmarc_report *report;
	const struct dmarc_record *record;
	const char *error;
	int ret;

	i_zero(res_r);
	parser = test_parser_init(read_func, context, limits);
	if (dmarc_parser_read_header(parser, &report, &error) < 0) {
		res_r->ret = -1;
		res_r->error = t_strdup(error);
	} else {
		while ((ret = dmarc_parser_next_record(parser, &record,
						       &error)) > 0) {
			if (res_r->records++ == 0) {
				res_r->disposition = t_strdup(record->disposition);
				res_r->dkim = t_strdup(record->dkim);
				res_r->spf = t_strdup(record->spf);
			}
			res_r->count_sum += record->count;
		}
		res_r->ret = ret;
		if (ret < 0)
			res_r->error = t_strdup(error);
	}
	res_r->warnings = t_strarray_join(dmarc_parser_get_warnings(parser),
					  "; ");
	res_r->anomalies = t_strarray_join(dmarc_parser_get_anomalies(parser),
					   "; ");
	dmarc_parser_deinit(&parser);
	test_assert(parser == NULL);
}

static void parse_data(const void *data, size_t size,
		       const struct dmarc_limits *limits,
		       struct parse_result *res_r)
{
	struct test_mem_reader reader = { .data = data, .size = size };

	parse_stream(test_mem_read, &reader, limits, res_r);
}

static void parse_string(const char *doc, struct parse_result *res_r)
{
	parse_data(doc, strlen(doc), test_default_limits(), res_r);
}

static buffer_t *read_corpus_file(const char *subdir, const char *name)
{
	const char *corpus = test_corpus_dir();

	if (corpus == NULL)
		return NULL;
	return test_read_file(t_strconcat(corpus, "/", subdir, "/",
					  name, NULL));
}

/* The independent check of the corpus figures: count "<record>" and sum
   the numbers after "<count>" in the raw text. This is valid for the
   corpus because none of its files uses a namespace prefix or attributes
   on <record>/<count>, <count> appears only inside records, and neither
   string occurs in comments or CDATA (checked by reading the files); the
   scan shares no code with the parser. */
static void scan_counts(const buffer_t *data, unsigned int *records_r,
			uint64_t *count_sum_r)
{
	const char *text = t_strndup(data->data, data->used), *p;

	*records_r = 0;
	*count_sum_r = 0;
	for (p = text; (p = strstr(p, "<record>")) != NULL; p++)
		(*records_r)++;
	for (p = text; (p = strstr(p, "<count>")) != NULL; p++) {
		const char *q = p + strlen("<count>");

		while (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r')
			q++;
		*count_sum_r += strtoull(q, NULL, 10);
	}
}

static void test_parse_corpus_aggregate(void)
{
	const char *const *names = test_corpus_list("aggregate");
	unsigned int files = 0;

	test_begin("parse: every aggregate/*.xml of the corpus");
	for (; *names != NULL; names++) {
		struct parse_result res;
		unsigned int records;
		uint64_t count_sum;
		buffer_t *data;

		if (!str_ends_with(*names, ".xml"))
			continue;	/* containers: dmarc-unpack's job */
		data = read_corpus_file("aggregate", *names);
		test_assert_idx(data != NULL, files);
		if (data == NULL)
			continue;
		parse_data(data->data, data->used, test_default_limits(),
			   &res);
		scan_counts(data, &records, &count_sum);
		if (res.ret != 0)
			i_error("%s: %s", *names, res.error);
		test_assert_idx(res.ret == 0, files);
		test_assert_idx(res.records == records, files);
		test_assert_idx(res.count_sum == count_sum, files);
		test_assert_idx(res.records > 0, files);
		files++;
	}
	if (test_corpus_dir() != NULL)
		test_assert(files >= 30);
	test_end();
}

/* Figures known from outside: the large report (counted by hand with
   grep) and mail-auth's .expected.json files. */
static void test_parse_corpus_expected_figures(void)
{
	static const struct {
		const char *name;
		unsigned int records;
		uint64_t count_sum;
		const char *org_name, *report_id, *domain;
		int64_t begin, end;
	} tests[] = {
		{ "parsedmarc--!large-example.com!1711897200!1711983600.xml",
		  2286, 2286, "", "example.com:1711897200", "example.com",
		  1711897200, 1711983600 },
		{ "mail-auth--001.xml", 1, 123, "Sample Reporter",
		  "3v98abbp8ya9n3va8yr8oa3ya", "example.com",
		  161212415, 161221511 },
		{ "mail-auth--002.xml", 1, 2, "google.com",
		  "2122885654478337555", "example.org",
		  1661558400, 1661644799 },
		{ "mail-auth--003.xml", 4, 9, "Fastmail Pty Ltd",
		  "758848224", "stalw.art", 1667347200, 1667433599 },
		{ "mail-auth--004.xml", 1, 123, "Sample Reporter",
		  "3v98abbp8ya9n3va8yr8oa3ya", "example.com",
		  302832000, 302918399 },
		{ "mail-auth--005.xml", 1, 1, "Legacy Reporter", "legacy-1",
		  "example.com", 100, 200 },
	};
	unsigned int i;

	test_begin("parse: corpus figures from outside");
	for (i = 0; i < N_ELEMENTS(tests) && test_corpus_dir() != NULL; i++) {
		struct dmarc_parser *parser;
		const struct dmarc_report *report;
		const struct dmarc_record *record;
		struct test_mem_reader reader;
		unsigned int records = 0;
		uint64_t count_sum = 0;
		const char *error;
		buffer_t *data;

		data = read_corpus_file("aggregate", tests[i].name);
		test_assert_idx(data != NULL, i);
		if (data == NULL)
			continue;
		i_zero(&reader);
		reader.data = data->data;
		reader.size = data->used;
		parser = test_parser_init(test_mem_read, &reader,
					   test_default_limits());
		test_assert_idx(dmarc_parser_read_header(parser, &report,
							 &error) == 0, i);
		test_assert_strcmp_idx(report->org_name, tests[i].org_name, i);
		test_assert_strcmp_idx(report->report_id, tests[i].report_id,
				       i);
		test_assert_strcmp_idx(report->policy.domain, tests[i].domain,
				       i);
		test_assert_idx(report->date_begin == tests[i].begin, i);
		test_assert_idx(report->date_end == tests[i].end, i);
		while (dmarc_parser_next_record(parser, &record, &error) > 0) {
			records++;
			count_sum += record->count;
		}
		test_assert_idx(records == tests[i].records, i);
		test_assert_idx(count_sum == tests[i].count_sum, i);
		dmarc_parser_deinit(&parser);
	}
	test_end();
}

/* Parse a corpus file (or a string) for field checks. */
struct field_parse {
	struct test_mem_reader reader;
	struct dmarc_parser *parser;
	const struct dmarc_report *report;
	buffer_t *data;
};

static bool field_parse_open(struct field_parse *fp, const char *name)
{
	const char *error;

	i_zero(fp);
	fp->data = read_corpus_file("aggregate", name);
	if (fp->data == NULL)
		return FALSE;
	fp->reader.data = fp->data->data;
	fp->reader.size = fp->data->used;
	fp->parser = test_parser_init(test_mem_read, &fp->reader,
				       test_default_limits());
	if (dmarc_parser_read_header(fp->parser, &fp->report, &error) < 0) {
		i_error("%s: %s", name, error);
		test_assert(FALSE);
		dmarc_parser_deinit(&fp->parser);
		return FALSE;
	}
	return TRUE;
}

static const struct dmarc_record *field_parse_next(struct field_parse *fp)
{
	const struct dmarc_record *record;
	const char *error;
	int ret;

	ret = dmarc_parser_next_record(fp->parser, &record, &error);
	test_assert(ret > 0);
	return ret > 0 ? record : NULL;
}

static void field_parse_close(struct field_parse *fp)
{
	const struct dmarc_record *record;
	const char *error;

	test_assert(dmarc_parser_next_record(fp->parser, &record,
					     &error) == 0);
	dmarc_parser_deinit(&fp->parser);
}

static const struct dmarc_auth_result *
auth_result(const struct dmarc_record *record, unsigned int idx)
{
	if (idx >= array_count(&record->auth_results))
		return NULL;
	return array_idx(&record->auth_results, idx);
}

static void test_parse_rfc9990_fields(void)
{
	const struct dmarc_record *record;
	const struct dmarc_auth_result *ar;
	struct field_parse fp;

	test_begin("parse: RFC 9990 sample (np, testing, discovery_method, "
		   "generator, namespace)");
	if (field_parse_open(&fp, "parsedmarc--rfc9990-sample.xml")) {
		const struct dmarc_report *report = fp.report;

		test_assert(report->format == DMARC_FORMAT_RFC9990);
		test_assert_strcmp(report->version, "1.0");
		test_assert_strcmp(report->generator,
				   "Example DMARC Aggregate Reporter v1.2");
		test_assert_strcmp(report->extra_contact_info, "...");
		test_assert_strcmp(report->policy.p, "quarantine");
		test_assert_strcmp(report->policy.sp, "none");
		test_assert_strcmp(report->policy.np, "none");
		test_assert_strcmp(report->policy.testing, "n");
		test_assert_strcmp(report->policy.discovery_method,
				   "treewalk");
		test_assert(report->policy.pct == DMARC_UNSET);
		test_assert(report->policy.adkim == NULL);
		record = field_parse_next(&fp);
		if (record != NULL) {
			test_assert_strcmp(record->source_ip, "192.0.2.123");
			test_assert(record->count == 123);
			/* RFC 9990 ActionDispositionType has "pass" */
			test_assert_strcmp(record->disposition, "pass");
			test_assert_strcmp(record->dkim, "pass");
			test_assert_strcmp(record->spf, "fail");
			test_assert_strcmp(record->envelope_from,
					   "example.com");
			test_assert(record->envelope_to == NULL);
			test_assert(array_count(&record->auth_results) == 2);
			ar = auth_result(record, 0);
			test_assert(ar != NULL && ar->type == DMARC_AUTH_DKIM);
			test_assert(ar != NULL &&
				    null_strcmp(ar->selector, "abc123") == 0);
			ar = auth_result(record, 1);
			test_assert(ar != NULL && ar->type == DMARC_AUTH_SPF);
			test_assert(ar != NULL && ar->scope == NULL);
			test_assert(ar != NULL &&
				    null_strcmp(ar->result, "fail") == 0);
		}
		field_parse_close(&fp);
	}
	if (field_parse_open(&fp, "parsedmarc--example.net!example.com!"
			     "1529366400!1529452799.xml")) {
		test_assert(fp.report->format != DMARC_FORMAT_RFC9990);
		dmarc_parser_deinit(&fp.parser);
	}
	test_end();
}

/* mail-auth--001 (unknown elements, version 2.0) and --003 (Fastmail:
   reasons, scope), compared with their .expected.json. */
static void test_parse_mail_auth_fields(void)
{
	const struct dmarc_record *record;
	const struct dmarc_policy_override *reason;
	const struct dmarc_auth_result *ar;
	struct field_parse fp;

	test_begin("parse: mail-auth--001/003 fields as in .expected.json");
	if (field_parse_open(&fp, "mail-auth--001.xml")) {
		test_assert_strcmp(fp.report->version, "2.0");
		test_assert_strcmp(fp.report->email,
				   "report_sender@example-reporter.com");
		test_assert_strcmp(fp.report->policy.p, "quarantine");
		test_assert_strcmp(fp.report->policy.testing, "n");
		test_assert(array_count(&fp.report->errors) == 0);
		record = field_parse_next(&fp);
		if (record != NULL) {
			test_assert_strcmp(record->source_ip, "192.168.4.4");
			test_assert(record->count == 123);
			test_assert_strcmp(record->disposition, "quarantine");
			test_assert_strcmp(record->header_from, "example.com");
			test_assert(record->envelope_from == NULL);
			ar = auth_result(record, 0);
			test_assert(ar != NULL &&
				    null_strcmp(ar->selector, "abc123") == 0 &&
				    null_strcmp(ar->result, "pass") == 0 &&
				    ar->human_result == NULL);
		}
		field_parse_close(&fp);
	}
	if (field_parse_open(&fp, "mail-auth--003.xml")) {
		record = field_parse_next(&fp);
		if (record != NULL) {
			test_assert_strcmp(record->source_ip, "64.147.108.117");
			test_assert(record->count == 3);
			test_assert(array_count(&record->reasons) == 1);
			reason = array_count(&record->reasons) == 0 ? NULL :
				array_front(&record->reasons);
			test_assert(reason != NULL && null_strcmp(reason->type,
				"trusted_forwarder") == 0);
			test_assert(reason != NULL && null_strcmp(
				reason->comment,
				"Policy ignored due to local white list") == 0);
			test_assert_strcmp(record->envelope_from,
					   "jmap.bounce.topicbox.com");
			ar = auth_result(record, 0);
			test_assert(ar != NULL && null_strcmp(ar->domain,
				"jmap.topicbox.com") == 0 &&
				null_strcmp(ar->selector, "dkim-1") == 0);
			ar = auth_result(record, 1);
			test_assert(ar != NULL &&
				    null_strcmp(ar->scope, "mfrom") == 0);
		}
		dmarc_parser_deinit(&fp.parser);
	}
	test_end();
}

static void test_parse_acme_override_reason(void)
{
	const struct dmarc_record *record;
	const struct dmarc_policy_override *reason;
	const struct dmarc_auth_result *ar;
	const char *const *errors;
	struct field_parse fp;

	test_begin("parse: acme <error>, <reason type=other>, envelope_to, "
		   "human_result");
	if (field_parse_open(&fp, "dmarc-report-viewer--acme.xml")) {
		test_assert(array_count(&fp.report->errors) == 1);
		errors = array_front(&fp.report->errors);
		test_assert_strcmp(errors[0], "There was a sample error.");
		test_assert_strcmp(fp.report->policy.fo, "1");
		test_assert(fp.report->policy.pct == 100);
		record = field_parse_next(&fp);
		if (record != NULL) {
			test_assert(array_count(&record->reasons) == 1);
			reason = array_front(&record->reasons);
			test_assert_strcmp(reason->type, "other");
			test_assert_strcmp(reason->comment, "DMARC Policy "
				"overridden for incoherent example.");
			test_assert_strcmp(record->envelope_from,
					   "example.com");
			test_assert_strcmp(record->envelope_to, "acme.com");
			ar = auth_result(record, 0);
			test_assert(ar != NULL && null_strcmp(ar->selector,
				"ExamplesSelector") == 0 &&
				null_strcmp(ar->human_result,
					    "Incoherent example") == 0);
			ar = auth_result(record, 1);
			test_assert(ar != NULL && ar->type == DMARC_AUTH_SPF &&
				    null_strcmp(ar->scope, "helo") == 0);
		}
		field_parse_close(&fp);
	}
	/* an empty <reason><type/><comment/></reason> is no override */
	if (field_parse_open(&fp, "parsedmarc--empty_reason.xml")) {
		record = field_parse_next(&fp);
		test_assert(record != NULL &&
			    array_count(&record->reasons) == 0);
		field_parse_close(&fp);
	}
	test_end();
}

static void test_parse_two_dkim_results(void)
{
	const struct dmarc_record *record;
	const struct dmarc_auth_result *ar;
	struct field_parse fp;

	test_begin("parse: two DKIM results per record, '1524268799 ' end");
	if (field_parse_open(&fp, "dmarc-report-converter--test.xml")) {
		test_assert(fp.report->date_end == 1524268799);
		record = field_parse_next(&fp);
		if (record != NULL) {
			test_assert(array_count(&record->auth_results) == 3);
			ar = auth_result(record, 0);
			test_assert(ar != NULL && ar->type == DMARC_AUTH_DKIM &&
				    null_strcmp(ar->domain, "test1.net") == 0 &&
				    null_strcmp(ar->selector, "selector1") == 0 &&
				    null_strcmp(ar->result, "fail") == 0);
			ar = auth_result(record, 1);
			test_assert(ar != NULL && ar->type == DMARC_AUTH_DKIM &&
				    null_strcmp(ar->domain, "test2.net") == 0 &&
				    null_strcmp(ar->selector, "selector2") == 0 &&
				    null_strcmp(ar->result, "pass") == 0);
			ar = auth_result(record, 2);
			test_assert(ar != NULL && ar->type == DMARC_AUTH_SPF &&
				    null_strcmp(ar->scope, "mfrom") == 0);
		}
		record = field_parse_next(&fp);
		if (record != NULL) {
			/* the arrays are reused: no result of record 1 left */
			test_assert_strcmp(record->source_ip, "10.1.1.1");
			test_assert(array_count(&record->auth_results) == 2);
			ar = auth_result(record, 1);
			test_assert(ar != NULL &&
				    null_strcmp(ar->result, "softfail") == 0);
		}
		field_parse_close(&fp);
	}
	test_end();
}

static void test_parse_quirks(void)
{
	const struct dmarc_record *record;
	const struct dmarc_auth_result *ar;
	struct field_parse fp;
	const char *const *warnings, *error;

	test_begin("parse: quirks (TABs, hardfail, invalid XML, stray "
		   "xs:schema, invalid UTF-8)");
	if (field_parse_open(&fp, "dmarc-report-viewer--yahoo.xml")) {
		record = field_parse_next(&fp);
		test_assert(record != NULL && record->source_ip != NULL &&
			    strchr(record->source_ip, '\t') == NULL);
		test_assert(strchr(fp.report->report_id, '\t') == NULL);
		dmarc_parser_deinit(&fp.parser);
	}
	if (field_parse_open(&fp, "dmarc-report-viewer--hardfail.xml")) {
		record = field_parse_next(&fp);
		ar = record == NULL ? NULL : auth_result(record, 1);
		test_assert(ar != NULL &&
			    null_strcmp(ar->result, "hardfail") == 0);
		ar = record == NULL ? NULL : auth_result(record, 0);
		test_assert(ar != NULL && null_strcmp(ar->domain, "") == 0);
		field_parse_close(&fp);
	}
	if (field_parse_open(&fp, "parsedmarc--invalid_xml.xml")) {
		test_assert_strcmp(fp.report->email, "<bad-xml@bad-xml.net>");
		record = field_parse_next(&fp);
		test_assert(record != NULL &&
			    null_strcmp(record->header_from,
					"bad<xml.net") == 0);
		test_assert(dmarc_parser_next_record(fp.parser, &record,
						     &error) == 0);
		warnings = dmarc_parser_get_warnings(fp.parser);
		test_assert(warnings[0] != NULL &&
			    strstr(warnings[0], "stray '<'") != NULL);
		dmarc_parser_deinit(&fp.parser);
	}
	if (field_parse_open(&fp, "parsedmarc--ikea.com!example.de!"
			     "1538690400!1538776800.xml")) {
		test_assert_strcmp(fp.report->org_name, "ikea.com");
		record = field_parse_next(&fp);
		test_assert(record != NULL &&
			    null_strcmp(record->source_ip,
					"234.234.234.234") == 0);
		test_assert(dmarc_parser_next_record(fp.parser, &record,
						     &error) == 0);
		warnings = dmarc_parser_get_warnings(fp.parser);
		test_assert(warnings[0] != NULL &&
			    strstr(warnings[0], "xs:schema") != NULL);
		dmarc_parser_deinit(&fp.parser);
	}
	if (field_parse_open(&fp, "parsedmarc--invalid_utf_8.xml")) {
		record = field_parse_next(&fp);
		test_assert(record != NULL && null_strcmp(record->header_from,
			"bad_byte\xef\xbf\xbd") == 0);
		test_assert(dmarc_parser_next_record(fp.parser, &record,
						     &error) == 0);
		warnings = dmarc_parser_get_warnings(fp.parser);
		test_assert(warnings[0] != NULL &&
			    strstr(warnings[0], "UTF-8") != NULL);
		dmarc_parser_deinit(&fp.parser);
	}
	test_end();
}

/* aggregate-invalid/: the decision for each file. */
static void test_parse_corpus_invalid(void)
{
	static const struct {
		const char *name;
		const char *error;	/* NULL: accepted */
	} tests[] = {
		{ "dmarc-analyzer--unknown_enums.xml",
		  "<p> \"experimental-value\" is not one of none, quarantine, "
		  "reject" },
		{ "dmarc-analyzer--zero_records.xml", "report has no records" },
		/* decided: one bad record is kept marked (an empty
		   source_ip) or with the bad value absent (an empty
		   disposition), the report stored */
		{ "dmarc-report-converter--test_empty.xml", NULL },
		/* decided: enumerations are case-normalised */
		{ "dmarc-report-viewer--invalid_casing.xml", NULL },
		{ "parsedmarc--empty.xml", "empty document" },
		{ "parsedmarc--report_with_upper_cased_pass.xml", NULL },
	};
	const char *const *names = test_corpus_list("aggregate-invalid");
	unsigned int i, seen = 0;

	test_begin("parse: aggregate-invalid/*.xml accepted or rejected "
		   "clearly");
	for (; *names != NULL; names++) {
		struct parse_result res;
		buffer_t *data;

		if (!str_ends_with(*names, ".xml"))
			continue;
		for (i = 0; i < N_ELEMENTS(tests); i++) {
			if (strcmp(tests[i].name, *names) == 0)
				break;
		}
		/* every file needs a decision here */
		test_assert_idx(i < N_ELEMENTS(tests), seen);
		data = read_corpus_file("aggregate-invalid", *names);
		if (i == N_ELEMENTS(tests) || data == NULL)
			continue;
		seen++;
		parse_data(data->data, data->used, test_default_limits(),
			   &res);
		if (tests[i].error == NULL) {
			if (res.ret != 0)
				i_error("%s: %s", *names, res.error);
			test_assert_idx(res.ret == 0 && res.records > 0, i);
		} else {
			test_assert_idx(res.ret < 0, i);
			test_assert_idx(res.error != NULL &&
					strstr(res.error, tests[i].error) != NULL,
					i);
			if (res.error != NULL &&
			    strstr(res.error, tests[i].error) == NULL)
				i_error("%s: %s", *names, res.error);
		}
	}
	if (test_corpus_dir() != NULL)
		test_assert(seen == N_ELEMENTS(tests));
	test_end();
}

static void test_parse_case_normalised(void)
{
	static const char *const spf_results[] = {
		"none", "neutral", "pass", "fail", "hardfail", "softfail",
		"temperror", "permerror"
	};
	const struct dmarc_record *record;
	const struct dmarc_auth_result *ar;
	struct test_mem_reader reader;
	const struct dmarc_report *report;
	struct dmarc_parser *parser;
	const char *error;
	buffer_t *data;
	unsigned int i;

	test_begin("parse: PascalCase/upper-case values are lower-cased");
	data = read_corpus_file("aggregate-invalid",
				"dmarc-report-viewer--invalid_casing.xml");
	if (data != NULL) {
		i_zero(&reader);
		reader.data = data->data;
		reader.size = data->used;
		parser = test_parser_init(test_mem_read, &reader,
					   test_default_limits());
		test_assert(dmarc_parser_read_header(parser, &report,
						     &error) == 0);
		test_assert(dmarc_parser_next_record(parser, &record,
						     &error) == 1);
		test_assert(array_count(&record->auth_results) == 9);
		for (i = 0; i < N_ELEMENTS(spf_results); i++) {
			ar = auth_result(record, i + 1);
			test_assert_idx(ar != NULL && null_strcmp(ar->result,
					spf_results[i]) == 0, i);
		}
		dmarc_parser_deinit(&parser);
	}
	data = read_corpus_file("aggregate-invalid",
				"parsedmarc--report_with_upper_cased_pass.xml");
	if (data != NULL) {
		i_zero(&reader);
		reader.data = data->data;
		reader.size = data->used;
		parser = test_parser_init(test_mem_read, &reader,
					   test_default_limits());
		test_assert(dmarc_parser_read_header(parser, &report,
						     &error) == 0);
		test_assert_strcmp(report->org_name, "example.com");
		test_assert(dmarc_parser_next_record(parser, &record,
						     &error) == 1);
		test_assert_strcmp(record->disposition, "none");
		test_assert_strcmp(record->dkim, "pass");
		test_assert_strcmp(record->spf, "pass");
		dmarc_parser_deinit(&parser);
	}
	test_end();
}

/* --- generated documents --- */

#define DOC_HEAD \
	"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<feedback>\n" \
	"<report_metadata><org_name>%s</org_name><email>a@b</email>" \
	"<report_id>r1</report_id><date_range><begin>100</begin>" \
	"<end>200</end></date_range></report_metadata>\n" \
	"<policy_published><domain>Example.COM</domain><p>none</p>" \
	"</policy_published>\n"
#define DOC_RECORD \
	"<record><row><source_ip>%s</source_ip><count>%s</count>" \
	"<policy_evaluated><disposition>none</disposition><dkim>pass</dkim>" \
	"<spf>fail</spf></policy_evaluated></row><identifiers>" \
	"<header_from>Example.COM</header_from></identifiers>" \
	"<auth_results><spf><domain>example.com</domain><result>pass</result>" \
	"</spf></auth_results></record>\n"
#define DOC_TAIL "</feedback>\n"

/* doc with its first "from" replaced by "to" */
static const char *doc_replace(const char *doc, const char *from,
			       const char *to)
{
	const char *p = strstr(doc, from);

	i_assert(p != NULL);
	return t_strconcat(t_strdup_until(doc, p), to, p + strlen(from), NULL);
}

static const char *make_doc(const char *org_name, const char *source_ip,
			    const char *count)
{
	return t_strdup_printf(DOC_HEAD DOC_RECORD DOC_TAIL, org_name,
			       source_ip, count);
}

/* Nothing in a report is lost: mail-auth--001's <extensions> (record
   level and, after the records, report level) and its unknown elements
   are kept as XML; the format follows the namespace, <version> is as
   given or NULL. */
static void test_parse_extensions_format_version(void)
{
	static const char *const unknown =
		"<unknown-tag1><unknown-tag2></unknown-tag2></unknown-tag1>";
	const struct dmarc_record *record;
	struct dmarc_limits limits = *test_default_limits();
	struct field_parse fp;
	struct parse_result res;
	const char *doc, *error;

	test_begin("parse: extensions and unknown elements kept, format, "
		   "version as given");
	if (field_parse_open(&fp, "mail-auth--001.xml")) {
		test_assert(fp.report->format == DMARC_FORMAT_RFC7489);
		test_assert_strcmp(fp.report->version, "2.0");
		record = field_parse_next(&fp);
		test_assert(record != NULL && null_strcmp(record->extensions,
			"<extensions><extension name=\"extensionName\" "
			"definition=\"https://path/to/spec\"><data>...</data>"
			"</extension><extension name=\"extensionName2\" "
			"definition=\"https://path/to/spec2\"><data>...</data>"
			"</extension></extensions>") == 0);
		/* the report level is complete once the report ended */
		test_assert(dmarc_parser_next_record(fp.parser, &record,
						     &error) == 0);
		test_assert_strcmp(fp.report->extensions, t_strconcat(
			unknown, unknown, "<extensions><extension "
			"name=\"otherExtension\" "
			"definition=\"https://path/to/spec\"><data>...</data>"
			"</extension></extensions>", NULL));
		dmarc_parser_deinit(&fp.parser);
	}
	if (field_parse_open(&fp, "parsedmarc--rfc9990-sample.xml")) {
		test_assert(fp.report->format == DMARC_FORMAT_RFC9990);
		test_assert_strcmp(fp.report->version, "1.0");
		record = field_parse_next(&fp);
		test_assert(record != NULL && record->extensions == NULL);
		test_assert(dmarc_parser_next_record(fp.parser, &record,
						     &error) == 0);
		test_assert(fp.report->extensions == NULL);
		dmarc_parser_deinit(&fp.parser);
	}
	/* no <version>: NULL, not an invented "1.0" */
	doc = make_doc("o", "192.0.2.1", "1");
	{
		struct test_mem_reader reader = {
			.data = (const void *)doc, .size = strlen(doc)
		};
		const struct dmarc_report *report;
		struct dmarc_parser *parser;
		const char *error;

		parser = test_parser_init(test_mem_read, &reader, &limits);
		test_assert(dmarc_parser_read_header(parser, &report,
						     &error) == 0);
		test_assert(report->version == NULL);
		test_assert(report->format == DMARC_FORMAT_RFC7489);
		dmarc_parser_deinit(&parser);
	}
	/* the draft namespace; attributes, namespaces, text escaped; line
	   breaks as references, never a control character */
	doc = doc_replace(doc_replace(make_doc("o", "192.0.2.1", "1"),
		"<feedback>", "<feedback xmlns=\"http://dmarc.org/dmarc-xml/0.1\">"),
		"</record>", "<x:ext xmlns:x=\"urn:x\" x:a=\"&quot;1&lt;\">"
		"a&amp;b\nc<y/></x:ext></record>");
	{
		struct test_mem_reader reader = {
			.data = (const void *)doc, .size = strlen(doc)
		};
		const struct dmarc_report *report;
		struct dmarc_parser *parser;
		const char *error;

		parser = test_parser_init(test_mem_read, &reader, &limits);
		test_assert(dmarc_parser_read_header(parser, &report,
						     &error) == 0);
		test_assert(report->format == DMARC_FORMAT_DRAFT);
		test_assert(dmarc_parser_next_record(parser, &record,
						     &error) == 1);
		test_assert_strcmp(record->extensions,
			"<x:ext xmlns:x=\"urn:x\" x:a=\"&quot;1&lt;\">"
			"a&amp;b&#10;c<y></y></x:ext>");
		dmarc_parser_deinit(&parser);
	}
	/* bounded: a fragment past the value limit is dropped whole, with
	   one anomaly */
	limits.max_value_length = 20;
	doc = doc_replace(make_doc("o", "192.0.2.1", "1"), "</record>",
			  "<a>short</a><b>this one is far too long</b></record>");
	parse_data(doc, strlen(doc), &limits, &res);
	test_assert(res.ret == 0 && res.records == 1);
	test_assert(strstr(res.anomalies, "1 extensions or unknown elements "
			   "not kept") != NULL);
	test_end();
}

/* One bad record costs the report nothing else: an invalid source_ip is
   kept as reported and marked, a record without a usable count is
   skipped; the anomaly says so once. A count past DMARC_MAX_COUNT is a
   bound and refuses the report. */
enum gen_outcome {
	GEN_STORED,		/* stored_ip, stored_count */
	GEN_INVALID_IP,		/* kept, source_ip as stored_ip, marked */
	GEN_SKIPPED,		/* record skipped: it was the only one, so
				   the report fails; the anomaly has error */
	GEN_FAILED,		/* the report fails with error */
};

static void test_parse_generated_values(void)
{
	static const struct {
		const char *org_name, *source_ip, *count;
		enum gen_outcome outcome;
		const char *error;
		const char *stored_ip;
		int64_t stored_count;
	} tests[] = {
		{ "x", "192.0.2.1", "1", GEN_STORED, NULL, "192.0.2.1", 1 },
		{ "x", " 2001:DB8:0:0::1 ", " 7\t", GEN_STORED, NULL,
		  "2001:db8::1", 7 },
		/* DMARC_MAX_COUNT */
		{ "x", "192.0.2.1", "1000000000000", GEN_STORED, NULL,
		  "192.0.2.1", 1000000000000LL },
		{ "x", "192.0.2.1", "1000000000001", GEN_FAILED,
		  "<count> \"1000000000001\" is more than 1000000000000 "
		  "messages", NULL, 0 },
		{ "x", "192.0.2.1", "9223372036854775807", GEN_FAILED,
		  "<count> \"9223372036854775807\" is more than", NULL, 0 },
		{ "x", "192.0.2.1", "99999999999999999999", GEN_FAILED,
		  "<count> \"99999999999999999999\" is more than", NULL, 0 },
		{ "x", "192.0.2.1", "9223372036854775808", GEN_FAILED,
		  "<count> \"9223372036854775808\" is more than", NULL, 0 },
		/* IPv4-mapped IPv6 addresses are the IPv4 source */
		{ "x", "::ffff:192.0.2.1", "1", GEN_STORED, NULL,
		  "192.0.2.1", 1 },
		{ "x", "::FFFF:C000:0201", "1", GEN_STORED, NULL,
		  "192.0.2.1", 1 },
		{ "x", "::ffff:0:192.0.2.1", "1", GEN_STORED, NULL,
		  "::ffff:0:c000:201", 1 },
		{ "x", "192.0.2.1", "-1", GEN_SKIPPED, "<count> \"-1\" is not",
		  NULL, 0 },
		{ "x", "192.0.2.1", "ten", GEN_SKIPPED,
		  "<count> \"ten\" is not", NULL, 0 },
		{ "x", "192.0.2.1", "", GEN_SKIPPED, "<count> \"\" is not",
		  NULL, 0 },
		{ "x", "192.0.2.300", "1", GEN_INVALID_IP, "\"192.0.2.300\"",
		  "192.0.2.300", 1 },
		{ "x", "999.300.1.1", "1", GEN_INVALID_IP, "\"999.300.1.1\"",
		  "999.300.1.1", 1 },
		{ "x", "fe80::1%eth0", "1", GEN_INVALID_IP, "\"fe80::1%eth0\"",
		  "fe80::1%eth0", 1 },
		{ "x", "mail.example.com", "1", GEN_INVALID_IP,
		  "\"mail.example.com\"", "mail.example.com", 1 },
		/* what net_addr2ip() takes besides addresses as written */
		{ "x", "10.1", "1", GEN_INVALID_IP, "\"10.1\"", "10.1", 1 },
		{ "x", "0x0a000001", "1", GEN_INVALID_IP, "\"0x0a000001\"",
		  "0x0a000001", 1 },
		{ "x", "3232235777", "1", GEN_INVALID_IP, "\"3232235777\"",
		  "3232235777", 1 },
		{ "x", "010.0.0.1", "1", GEN_INVALID_IP, "\"010.0.0.1\"",
		  "010.0.0.1", 1 },
		{ "x", "192.0.2.1 x", "1", GEN_INVALID_IP, "\"192.0.2.1 x\"",
		  "192.0.2.1 x", 1 },
		{ "x", "[2001:db8::1]", "1", GEN_INVALID_IP,
		  "\"[2001:db8::1]\"", "[2001:db8::1]", 1 },
		{ "x", "", "1", GEN_INVALID_IP, "no <source_ip>", "", 1 },
	};
	unsigned int i;

	test_begin("parse: generated count and source_ip values");
	/* a bad record among good ones costs only itself */
	T_BEGIN {
		struct parse_result res;
		const char *doc = t_strdup_printf(DOC_HEAD DOC_RECORD DOC_RECORD
			DOC_RECORD DOC_TAIL, "o", "192.0.2.1", "ten",
			"192.0.2.2", "2", "192.0.2.3", "-1");

		parse_data(doc, strlen(doc), test_default_limits(), &res);
		test_assert(res.ret == 0 && res.records == 1 &&
			    res.count_sum == 2);
		test_assert_strcmp(res.anomalies, "2 records not stored "
			"(first: record 1: <count> \"ten\" is not a "
			"non-negative integer)");
	} T_END;
	for (i = 0; i < N_ELEMENTS(tests); i++) T_BEGIN {
		const char *doc = make_doc(tests[i].org_name,
					   tests[i].source_ip, tests[i].count);
		struct test_mem_reader reader = {
			.data = (const void *)doc, .size = strlen(doc)
		};
		const struct dmarc_report *report;
		const struct dmarc_record *record;
		struct dmarc_parser *parser;
		const char *error = NULL, *anomalies;
		int ret;

		parser = test_parser_init(test_mem_read, &reader,
					   test_default_limits());
		test_assert_idx(dmarc_parser_read_header(parser, &report,
							 &error) == 0, i);
		test_assert_strcmp_idx(report->policy.domain, "example.com",
				       i);
		ret = dmarc_parser_next_record(parser, &record, &error);
		switch (tests[i].outcome) {
		case GEN_STORED:
		case GEN_INVALID_IP:
			test_assert_idx(ret == 1, i);
			if (ret != 1)
				break;
			test_assert_strcmp_idx(record->source_ip,
					       tests[i].stored_ip, i);
			test_assert_idx(record->source_ip_valid ==
				(tests[i].outcome == GEN_STORED), i);
			test_assert_idx(record->count ==
					tests[i].stored_count, i);
			test_assert_strcmp_idx(record->header_from,
					       "example.com", i);
			test_assert_idx(dmarc_parser_next_record(parser,
					&record, &error) == 0, i);
			break;
		case GEN_SKIPPED:
			/* its only record: nothing usable is left */
			test_assert_idx(ret == -1, i);
			test_assert_idx(ret == 1 || (strstr(error,
					"no usable record (record 1: ") != NULL &&
					strstr(error, tests[i].error) != NULL), i);
			break;
		case GEN_FAILED:
			test_assert_idx(ret == -1, i);
			test_assert_idx(ret == 1 || strstr(error,
					tests[i].error) != NULL, i);
			/* and it stays failed */
			test_assert_idx(dmarc_parser_next_record(parser,
					&record, &error) == -1, i);
			break;
		}
		anomalies = t_strarray_join(
			dmarc_parser_get_anomalies(parser), "|");
		if (tests[i].outcome == GEN_SKIPPED ||
		    tests[i].outcome == GEN_INVALID_IP) {
			/* one line, naming the first bad value */
			test_assert_idx(strchr(anomalies, '|') == NULL, i);
			test_assert_idx(strstr(anomalies,
					       tests[i].error) != NULL, i);
		} else if (tests[i].outcome == GEN_STORED) {
			test_assert_strcmp_idx(anomalies, "", i);
		}
		dmarc_parser_deinit(&parser);
	} T_END;
	test_end();
}

static void test_parse_header_errors(void)
{
	static const struct {
		const char *doc;
		const char *error;
		size_t size;	/* 0: strlen(doc) */
	} tests[] = {
		{ "<feedback><report_metadata><org_name>o</org_name>"
		  "<date_range><begin>1</begin><end>2</end></date_range>"
		  "</report_metadata><policy_published><domain>d</domain>"
		  "</policy_published>" DOC_RECORD DOC_TAIL,
		  "no <report_id>", 0 },
		{ "<feedback><report_metadata><report_id>r</report_id>"
		  "<date_range><begin>1</begin><end>2</end></date_range>"
		  "</report_metadata><policy_published><p>none</p>"
		  "</policy_published>" DOC_RECORD DOC_TAIL,
		  "no <domain> in policy_published", 0 },
		{ "<feedback><report_metadata><report_id>r</report_id>"
		  "</report_metadata><policy_published><domain>d</domain>"
		  "</policy_published>" DOC_RECORD DOC_TAIL,
		  "no <date_range>", 0 },
		{ "<feedback><report_metadata><report_id>r</report_id>"
		  "<date_range><begin>x</begin><end>2</end></date_range>"
		  "</report_metadata><policy_published><domain>d</domain>"
		  "</policy_published>" DOC_RECORD DOC_TAIL,
		  "<begin> \"x\" is not a Unix time", 0 },
		{ "<feedback><report_metadata><report_id>r</report_id>"
		  "<date_range><begin>1</begin><end>2</end></date_range>"
		  "</report_metadata><policy_published><domain>d</domain>"
		  "<p>none</p><sp>Maybe</sp></policy_published>"
		  DOC_RECORD DOC_TAIL,
		  "<sp> \"Maybe\" is not one of none, quarantine, reject", 0 },
		{ "<html><body><p>Hello</p></body></html>",
		  "not a DMARC aggregate report (root element <html>)", 0 },
		{ "<html><head><meta charset=utf-8></head></html>",
		  "not a DMARC aggregate report (root element <html>)", 0 },
		{ "<!DOCTYPE html><html></html>", "DOCTYPE not allowed", 0 },
		{ "<x:feedback xmlns:x=\"urn:example:other\"></x:feedback>",
		  "not a DMARC aggregate report (root element <feedback> in "
		  "namespace urn:example:other)", 0 },
		{ "<feedback><a></b></feedback>",
		  "XML error at line 1: Opening and ending tag mismatch", 0 },
		{ "hello", "not an XML document", 0 },
		/* UTF-16 */
		{ "\xff\xfe<\0f\0", "not an XML document", 6 },
		{ " \n\t ", "empty document", 0 },
		{ "", "empty document", 0 },
	};
	unsigned int i;

	test_begin("parse: header errors and non-reports");
	for (i = 0; i < N_ELEMENTS(tests); i++) {
		struct parse_result res;

		parse_data(tests[i].doc, tests[i].size != 0 ? tests[i].size :
			   strlen(tests[i].doc),
			   test_default_limits(), &res);
		test_assert_idx(res.ret == -1, i);
		test_assert_idx(res.error != NULL &&
				strstr(res.error, tests[i].error) != NULL, i);
		if (res.error == NULL ||
		    strstr(res.error, tests[i].error) == NULL)
			i_error("case %u: %s", i, res.error);
	}
	test_end();
}

static void test_parse_record_enums(void)
{
	static const struct {
		const char *from, *to, *error;
	} tests[] = {
		{ "<disposition>none</disposition>",
		  "<disposition>QUARANTINE</disposition>", NULL },
		{ "<disposition>none</disposition>",
		  "<disposition>discard</disposition>",
		  "<disposition> \"discard\" is not one of none, pass, "
		  "quarantine, reject" },
		{ "<disposition>none</disposition>", "<disposition/>",
		  "<disposition> \"\" is not one of" },
		{ "<dkim>pass</dkim>", "<dkim>temperror</dkim>",
		  "<dkim> \"temperror\" is not one of pass, fail" },
		{ "<spf>fail</spf>", "<spf> Pass </spf>", NULL },
		{ "<result>pass</result>", "<result>Weird-Value</result>",
		  NULL },
	};
	unsigned int i;

	test_begin("parse: policy_evaluated enumerations");
	for (i = 0; i < N_ELEMENTS(tests); i++) T_BEGIN {
		string_t *doc = t_str_new(1024);
		const char *base = make_doc("o", "192.0.2.1", "1"), *p;
		struct parse_result res;

		p = strstr(base, tests[i].from);
		i_assert(p != NULL);
		str_append_data(doc, base, p - base);
		str_append(doc, tests[i].to);
		str_append(doc, p + strlen(tests[i].from));
		parse_data(str_data(doc), str_len(doc), test_default_limits(),
			   &res);
		/* an unknown value costs the record only that value */
		test_assert_idx(res.ret == 0 && res.records == 1, i);
		if (tests[i].error == NULL)
			test_assert_strcmp_idx(res.anomalies, "", i);
		else {
			test_assert_idx(strstr(res.anomalies,
					       tests[i].error) != NULL, i);
			test_assert_idx(strstr(res.anomalies, "record 1: ") !=
					NULL, i);
			test_assert_idx(res.disposition == NULL ||
					res.dkim == NULL, i);
		}
	} T_END;
	test_end();
}

static void test_parse_begin_after_end_warning(void)
{
	struct parse_result res;
	const char *doc = t_strdup_printf(DOC_HEAD DOC_RECORD DOC_TAIL, "o",
					  "192.0.2.1", "1");

	const char *p = strstr(doc, "<begin>100</begin>");
	string_t *str = t_str_new(1024);

	test_begin("parse: begin > end is stored, with one warning");
	str_append_data(str, doc, p - doc);
	str_append(str, "<begin>300</begin>");
	str_append(str, p + strlen("<begin>100</begin>"));
	parse_string(str_c(str), &res);
	test_assert(res.ret == 0);
	test_assert(strstr(res.anomalies, "begin 300 is after end 200 "
			   "(stored as reported)") != NULL);
	test_end();
}

static void test_parse_namespaces(void)
{
	static const char *const prefixed =
		"<d:feedback xmlns:d=\"urn:ietf:params:xml:ns:dmarc-2.0\">"
		"<d:report_metadata><d:org_name>O</d:org_name>"
		"<x:org_name xmlns:x=\"urn:example:other\">Evil</x:org_name>"
		"<d:report_id>r</d:report_id><d:date_range><d:begin>1</d:begin>"
		"<d:end>2</d:end></d:date_range></d:report_metadata>"
		"<d:policy_published><d:domain>d</d:domain>"
		"</d:policy_published><d:record><d:row>"
		"<d:source_ip>192.0.2.1</d:source_ip><d:count>4</d:count>"
		"</d:row></d:record></d:feedback>";
	static const char *const draft =
		"<feedback xmlns=\"http://dmarc.org/dmarc-xml/0.1\">"
		"<report_metadata><org_name>O</org_name>"
		"<report_id>r</report_id><date_range><begin>1</begin>"
		"<end>2</end></date_range></report_metadata>"
		"<policy_published><domain>d</domain></policy_published>"
		"<record><row><source_ip>192.0.2.1</source_ip><count>4</count>"
		"</row></record>"
		"<report_metadata><report_id>changed</report_id>"
		"</report_metadata></feedback>";
	struct test_mem_reader reader;
	const struct dmarc_report *report;
	const struct dmarc_record *record;
	struct dmarc_parser *parser;
	const char *error;

	test_begin("parse: namespaces, foreign elements, late header");
	i_zero(&reader);
	reader.data = (const void *)prefixed;
	reader.size = strlen(prefixed);
	parser = test_parser_init(test_mem_read, &reader,
				   test_default_limits());
	test_assert(dmarc_parser_read_header(parser, &report, &error) == 0);
	test_assert(report->format == DMARC_FORMAT_RFC9990);
	test_assert_strcmp(report->org_name, "O");
	test_assert(dmarc_parser_next_record(parser, &record, &error) == 1);
	test_assert(record->count == 4);
	test_assert(dmarc_parser_next_record(parser, &record, &error) == 0);
	dmarc_parser_deinit(&parser);

	i_zero(&reader);
	reader.data = (const void *)draft;
	reader.size = strlen(draft);
	parser = test_parser_init(test_mem_read, &reader,
				   test_default_limits());
	test_assert(dmarc_parser_read_header(parser, &report, &error) == 0);
	test_assert(report->format != DMARC_FORMAT_RFC9990);
	test_assert(dmarc_parser_next_record(parser, &record, &error) == 1);
	test_assert(dmarc_parser_next_record(parser, &record, &error) == 0);
	/* a header after the records cannot change the stored report */
	test_assert_strcmp(report->report_id, "r");
	test_assert(strstr(t_strarray_join(dmarc_parser_get_warnings(parser),
			   " "), "ignored <report_metadata> after") != NULL);
	dmarc_parser_deinit(&parser);
	test_end();
}

/* billion laughs */
static const char *billion_laughs(void)
{
	string_t *str = t_str_new(2048);
	unsigned int i, j;

	str_append(str, "<?xml version=\"1.0\"?>\n<!DOCTYPE feedback [\n"
		   "<!ENTITY lol0 \"lol\">\n");
	for (i = 1; i < 10; i++) {
		str_printfa(str, "<!ENTITY lol%u \"", i);
		for (j = 0; j < 10; j++)
			str_printfa(str, "&lol%u;", i - 1);
		str_append(str, "\">\n");
	}
	str_append(str, "]>\n<feedback><report_metadata><org_name>&lol9;"
		   "</org_name></report_metadata></feedback>\n");
	return str_c(str);
}

static void test_parse_hostile_dtd(void)
{
	const char *xxe =
		"<?xml version=\"1.0\"?>\n"
		"<!DOCTYPE feedback [<!ENTITY xxe SYSTEM "
		"\"file:///etc/passwd\">]>\n"
		"<feedback><report_metadata><org_name>&xxe;</org_name>"
		"<report_id>r</report_id><date_range><begin>1</begin>"
		"<end>2</end></date_range></report_metadata>"
		"<policy_published><domain>d</domain></policy_published>"
		DOC_RECORD DOC_TAIL;
	const char *late_doctype =
		"<?xml version=\"1.0\"?>\n<!-- a comment -->\n"
		"<!doctype feedback SYSTEM \"http://127.0.0.1:1/x.dtd\">\n"
		"<feedback/>";
	struct parse_result res;

	test_begin("parse: DTDs refused (billion laughs, external entity)");
	/* refused before libxml2 sees any entity, so nothing expands */
	parse_string(billion_laughs(), &res);
	test_assert(res.ret == -1);
	test_assert_strcmp(res.error, "DOCTYPE not allowed");

	parse_string(xxe, &res);
	test_assert(res.ret == -1);
	test_assert_strcmp(res.error, "DOCTYPE not allowed");
	test_assert(strstr(res.error, "root:") == NULL);

	parse_string(late_doctype, &res);
	test_assert(res.ret == -1);
	test_assert_strcmp(res.error, "DOCTYPE not allowed");

	/* an entity reference without any DTD is kept as text */
	parse_string(make_doc("&xxe; AT&T &amp; &#0;", "192.0.2.1", "1"),
		     &res);
	test_assert(res.ret == 0);
	test_assert(strstr(res.warnings, "bare '&'") != NULL);
	test_assert(strstr(res.warnings, "character references") != NULL);
	test_end();
}

static void test_parse_org_name_repairs(void)
{
	static const struct {
		const char *org_name;
		size_t org_name_len;
		const char *stored;
		const char *warning;
	} tests[] = {
		{ "&xxe; AT&T &amp; &#0;", 0,
		  "&xxe; AT&T & \xef\xbf\xbd", "bare '&'" },
		{ "ab\xff" "cd", 0, "ab\xef\xbf\xbd" "cd", "UTF-8" },
		{ "a\0b", 3, "a\xef\xbf\xbd" "b", "UTF-8" },
		{ "a\x01\x1f" "b\xed\xa0\x80", 0,
		  "a\xef\xbf\xbd\xef\xbf\xbd" "b\xef\xbf\xbd\xef\xbf\xbd"
		  "\xef\xbf\xbd", "UTF-8" },
		{ "<John Doe> & <jd@example.com>", 0,
		  "<John Doe> & <jd@example.com>", "stray '<'" },
		{ "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 0,
		  "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", NULL },
		{ "<![CDATA[a<b&c]]> d", 0, "a<b&c d", NULL },
		{ "a<!-- <record> -->b", 0, "ab", NULL },
	};
	unsigned int i;

	test_begin("parse: repaired text (UTF-8, NUL, '<', '&')");
	for (i = 0; i < N_ELEMENTS(tests); i++) T_BEGIN {
		string_t *doc = t_str_new(1024);
		const char *head, *org;
		struct test_mem_reader reader;
		struct dmarc_parser *parser;
		const struct dmarc_report *report;
		const char *error, *const *warnings;
		bool found = FALSE;

		/* the doc with the raw org_name bytes (may hold a NUL) */
		head = t_strdup_printf(DOC_HEAD, "@@");
		org = strstr(head, "@@");
		str_append_data(doc, head, org - head);
		if (tests[i].org_name_len > 0)
			str_append_data(doc, tests[i].org_name,
					tests[i].org_name_len);
		else
			str_append(doc, tests[i].org_name);
		str_append(doc, org + 2);
		str_printfa(doc, DOC_RECORD DOC_TAIL, "192.0.2.1", "1");

		i_zero(&reader);
		reader.data = str_data(doc);
		reader.size = str_len(doc);
		parser = test_parser_init(test_mem_read, &reader,
					   test_default_limits());
		test_assert_idx(dmarc_parser_read_header(parser, &report,
							 &error) == 0, i);
		if (report != NULL)
			test_assert_strcmp_idx(report->org_name,
					       tests[i].stored, i);
		warnings = dmarc_parser_get_warnings(parser);
		for (; *warnings != NULL; warnings++) {
			if (tests[i].warning != NULL &&
			    strstr(*warnings, tests[i].warning) != NULL)
				found = TRUE;
		}
		test_assert_idx(found == (tests[i].warning != NULL), i);
		dmarc_parser_deinit(&parser);
	} T_END;
	test_end();
}

static void test_parse_limits(void)
{
	struct dmarc_limits limits = *test_default_limits();
	struct test_mem_reader reader;
	struct dmarc_parser *parser;
	const struct dmarc_report *report;
	const struct dmarc_record *record;
	struct parse_result res;
	string_t *doc, *org;
	const char *error;
	unsigned int i;

	test_begin("parse: depth, records and value length limits");
	/* deep nesting */
	doc = t_str_new(4096);
	str_append(doc, "<feedback>");
	for (i = 0; i < 200; i++)
		str_append(doc, "<a>");
	parse_data(str_data(doc), str_len(doc), &limits, &res);
	test_assert(res.ret == -1);
	test_assert(strstr(res.error, "nested deeper than 32") != NULL);

	/* records limit */
	str_truncate(doc, 0);
	str_printfa(doc, DOC_HEAD, "o");
	for (i = 0; i < 3; i++)
		str_printfa(doc, DOC_RECORD, "192.0.2.1", "1");
	str_append(doc, DOC_TAIL);
	limits.max_records = 2;
	parse_data(str_data(doc), str_len(doc), &limits, &res);
	test_assert(res.ret == -1 && res.records == 2);
	test_assert(strstr(res.error, "more than 2 records") != NULL);
	limits.max_records = 3;
	parse_data(str_data(doc), str_len(doc), &limits, &res);
	test_assert(res.ret == 0 && res.records == 3);

	/* over-long value: cut, with a warning */
	limits = *test_default_limits();
	limits.max_value_length = 100;
	org = t_str_new(6000);
	for (i = 0; i < 3000; i++)
		str_append(org, "\xc3\xa9");
	str_truncate(doc, 0);
	str_append(doc, doc_replace(t_strdup_printf(
		DOC_HEAD DOC_RECORD DOC_TAIL, "o", "192.0.2.1", "1"),
		"<email>a@b</email>", t_strdup_printf("<email>%s</email>",
						      str_c(org))));
	i_zero(&reader);
	reader.data = str_data(doc);
	reader.size = str_len(doc);
	parser = test_parser_init(test_mem_read, &reader, &limits);
	test_assert(dmarc_parser_read_header(parser, &report, &error) == 0);
	/* 100 bytes = 50 two-byte characters, never a split one */
	test_assert(strlen(report->email) == 100);
	/* a warning (not a debug line), once the report ended */
	test_assert(dmarc_parser_next_record(parser, &record, &error) == 1);
	test_assert(dmarc_parser_next_record(parser, &record, &error) == 0);
	test_assert(strstr(t_strarray_join(dmarc_parser_get_anomalies(parser),
			   " "), "cut 1 values to 100 bytes") != NULL);
	dmarc_parser_deinit(&parser);
	limits.max_value_length = 99;
	i_zero(&reader);
	reader.data = str_data(doc);
	reader.size = str_len(doc);
	parser = test_parser_init(test_mem_read, &reader, &limits);
	test_assert(dmarc_parser_read_header(parser, &report, &error) == 0);
	test_assert(strlen(report->email) == 98);
	dmarc_parser_deinit(&parser);
	test_end();
}

/* The key (org_name, report_id, policy domain) is never cut to
   dmarcreport_max_value_length: two report_ids that differ past it are
   two reports. Past PARSE_MAX_KEY_LENGTH (64 KiB) the report is refused. */
static void test_parse_key_not_cut(void)
{
	struct dmarc_limits limits = *test_default_limits();
	struct parse_result res;
	string_t *id = t_str_new(70000), *doc = t_str_new(80000);
	const struct dmarc_report *report;
	struct test_mem_reader reader;
	struct dmarc_parser *parser;
	const char *error;
	unsigned int i;

	test_begin("parse: the dedup key is never cut");
	limits.max_value_length = 16;
	for (i = 0; i < 100; i++)
		str_append_c(id, 'a' + i % 26);
	str_append(doc, doc_replace(t_strdup_printf(
		DOC_HEAD DOC_RECORD DOC_TAIL, "Example Org With A Long Name",
		"192.0.2.1", "1"), "<report_id>r1</report_id>",
		t_strdup_printf("<report_id>%s</report_id>", str_c(id))));
	i_zero(&reader);
	reader.data = str_data(doc);
	reader.size = str_len(doc);
	parser = test_parser_init(test_mem_read, &reader, &limits);
	test_assert(dmarc_parser_read_header(parser, &report, &error) == 0);
	test_assert_strcmp(report->report_id, str_c(id));
	test_assert_strcmp(report->org_name, "Example Org With A Long Name");
	/* the email "a@b" fits; nothing was cut */
	test_assert(strstr(t_strarray_join(dmarc_parser_get_warnings(parser),
			   " "), "cut ") == NULL);
	dmarc_parser_deinit(&parser);

	/* hostile: a 64 KiB + 1 report_id refuses the report */
	str_truncate(id, 0);
	for (i = 0; i < 65537; i++)
		str_append_c(id, 'x');
	str_truncate(doc, 0);
	str_append(doc, doc_replace(t_strdup_printf(
		DOC_HEAD DOC_RECORD DOC_TAIL, "o", "192.0.2.1", "1"),
		"<report_id>r1</report_id>",
		t_strdup_printf("<report_id>%s</report_id>", str_c(id))));
	parse_data(str_data(doc), str_len(doc), &limits, &res);
	test_assert(res.ret == -1 && res.error != NULL &&
		    strstr(res.error, "<report_id> is longer than 65536 "
			   "bytes") != NULL);
	test_end();
}

/* Truncated at every length: an error, never a crash, and never a
   report accepted unless </feedback> is in. */
static void test_parse_truncated(void)
{
	buffer_t *data;
	const char *doc;
	size_t len, full, root_start;
	unsigned int failures = 0, not_said_truncated = 0;

	test_begin("parse: truncated documents");
	doc = t_strdup_printf(DOC_HEAD DOC_RECORD DOC_RECORD DOC_TAIL, "o",
			      "192.0.2.1", "1", "192.0.2.2", "2");
	full = strlen(doc);
	root_start = strstr(doc, "<feedback>") - doc + strlen("<feedback>");
	data = t_buffer_create(full);
	buffer_append(data, doc, full);
	for (len = 0; len < full; len++) T_BEGIN {
		struct parse_result res;
		bool complete = len >= strlen(doc) - strlen(DOC_TAIL) +
			strlen("</feedback>");

		parse_data(data->data, len, test_default_limits(), &res);
		if ((res.ret == 0) != complete || (res.ret < 0 &&
						    res.error == NULL))
			failures++;
		/* once the root started, the reason says what happened,
		   not libxml2's "Extra content at the end" */
		if (res.ret < 0 && len >= root_start &&
		    strstr(res.error, "truncated: premature end") == NULL) {
			if (not_said_truncated++ == 0)
				i_info("length %zu: %s", len, res.error);
		}
	} T_END;
	test_assert(failures == 0);
	test_assert(not_said_truncated == 0);
	test_end();
}

/* Issue 9 item 1: 118k xmlns declarations kept libxml2 busy for minutes
   (it checks the namespaces in scope on every start tag). */
static void test_parse_namespace_and_attribute_bounds(void)
{
	struct parse_result res;
	string_t *doc;
	unsigned int i, level;

	test_begin("parse: namespace declarations and attributes bounded");
	/* 65 declarations over 5 levels: refused at the 65th */
	doc = t_str_new(4096);
	str_append(doc, "<feedback xmlns=\"urn:ietf:params:xml:ns:dmarc-2.0\">");
	for (level = 0, i = 1; level < 5; level++) {
		unsigned int j;

		str_append(doc, "<n");
		for (j = 0; j < 16; j++, i++)
			str_printfa(doc, " xmlns:p%u=\"urn:x\"", i);
		str_append(doc, ">");
	}
	parse_data(str_data(doc), str_len(doc), test_default_limits(), &res);
	test_assert(res.ret == -1);
	test_assert(res.error != NULL && strstr(res.error,
		"more than 64 XML namespace declarations") != NULL);

	/* 33 attributes in one tag */
	str_truncate(doc, 0);
	str_append(doc, "<feedback><report_metadata");
	for (i = 0; i < 33; i++)
		str_printfa(doc, " a%u=\"\"", i);
	str_append(doc, "/></feedback>");
	parse_data(str_data(doc), str_len(doc), test_default_limits(), &res);
	test_assert(res.ret == -1);
	test_assert(res.error != NULL && strstr(res.error,
		"more than 32 attributes in one tag") != NULL);

	/* 1,001 distinct element names: libxml2 2.9's dictionary makes
	   each new name cost more */
	str_truncate(doc, 0);
	str_append(doc, strstr(make_doc("o", "192.0.2.1", "1"), "<feedback>"));
	str_truncate(doc, str_len(doc) - strlen(DOC_TAIL));
	for (i = 0; i < 1001; i++)
		str_printfa(doc, "<unknown%u/>", i);
	str_append(doc, DOC_TAIL);
	parse_data(str_data(doc), str_len(doc), test_default_limits(), &res);
	test_assert(res.ret == -1);
	test_assert(res.error != NULL && strstr(res.error,
		"more than 1000 distinct XML names") != NULL);

	/* what real reports carry passes */
	parse_string(t_strconcat("<feedback xmlns:xsi=\"http://www.w3.org/2001/"
		"XMLSchema-instance\" xmlns:xs=\"http://www.w3.org/2001/XMLSchema\""
		" xsi:noNamespaceSchemaLocation=\"dmarc.xsd\">",
		strstr(make_doc("o", "192.0.2.1", "1"), "<feedback>") +
		strlen("<feedback>"), NULL), &res);
	test_assert(res.ret == 0 && res.records == 1);
	test_end();
}

#define AUTH_DKIM "<dkim><domain>d%u.example</domain><result>pass</result></dkim>"

static const char *doc_with_auth(unsigned int records, const char *auth)
{
	string_t *doc = t_str_new(1024);
	unsigned int i;

	str_printfa(doc, DOC_HEAD, "o");
	for (i = 0; i < records; i++) {
		str_printfa(doc, "<record><row><source_ip>192.0.2.1</source_ip>"
			    "<count>1</count></row><auth_results>%s"
			    "</auth_results></record>\n", auth);
	}
	str_append(doc, DOC_TAIL);
	return str_c(doc);
}

/* Issue 9 item 11: 36k records with 1,000 empty <dkim/> each added 36M
   rows. */
static void test_parse_auth_results_bounded(void)
{
	struct dmarc_limits limits = *test_default_limits();
	const struct dmarc_record *record;
	struct dmarc_parser *parser;
	const struct dmarc_report *report;
	struct test_mem_reader reader;
	struct parse_result res;
	string_t *auth;
	const char *doc, *error;
	unsigned int i;

	test_begin("parse: auth results bounded, empty ones dropped");
	/* 1,000 empty results (and one with only a selector) are nothing */
	auth = t_str_new(8192);
	for (i = 0; i < 1000; i++)
		str_append(auth, i % 2 == 0 ? "<dkim/>" : "<spf> </spf>");
	str_append(auth, "<dkim><domain></domain><result/></dkim>"
		   "<dkim><selector>s1</selector></dkim>");
	doc = doc_with_auth(2, str_c(auth));
	i_zero(&reader);
	reader.data = (const void *)doc;
	reader.size = strlen(doc);
	parser = test_parser_init(test_mem_read, &reader, &limits);
	test_assert(dmarc_parser_read_header(parser, &report, &error) == 0);
	for (i = 0; dmarc_parser_next_record(parser, &record, &error) > 0; i++) {
		test_assert_idx(array_count(&record->auth_results) == 1, i);
		test_assert_strcmp_idx(((const struct dmarc_auth_result *)array_front(&record->auth_results))->
				       selector, "s1", i);
	}
	test_assert(i == 2);
	dmarc_parser_deinit(&parser);

	/* more than max_auth_results in one record: refused, the setting
	   named */
	str_truncate(auth, 0);
	for (i = 0; i < 3; i++)
		str_printfa(auth, AUTH_DKIM, i);
	limits.max_auth_results = 3;
	parse_data(doc_with_auth(1, str_c(auth)), strlen(doc_with_auth(1,
		   str_c(auth))), &limits, &res);
	test_assert(res.ret == 0 && res.records == 1);
	limits.max_auth_results = 2;
	doc = doc_with_auth(1, str_c(auth));
	parse_data(doc, strlen(doc), &limits, &res);
	test_assert(res.ret == -1);
	test_assert(res.error != NULL && strstr(res.error,
		"more than 2 auth_results in one record "
		"(dmarcreport_max_auth_results)") != NULL);

	/* rows: 3 records with 3 results each are 12 */
	limits = *test_default_limits();
	doc = doc_with_auth(3, str_c(auth));
	limits.max_report_rows = 12;
	parse_data(doc, strlen(doc), &limits, &res);
	test_assert(res.ret == 0 && res.records == 3);
	limits.max_report_rows = 11;
	parse_data(doc, strlen(doc), &limits, &res);
	test_assert(res.ret == -1);
	test_assert(res.error != NULL && strstr(res.error,
		"more than 11 records and auth results "
		"(dmarcreport_max_report_rows)") != NULL);
	test_end();
}

/* Issue 9 item 3: counts adding up past INT64_MAX. */
static void test_parse_count_total_bounded(void)
{
	struct parse_result res;
	const char *doc;

	test_begin("parse: the report's total count is bounded");
	doc = t_strdup_printf(DOC_HEAD DOC_RECORD DOC_RECORD DOC_TAIL, "o",
			      "192.0.2.1", "500000000000",
			      "192.0.2.2", "500000000000");
	parse_string(doc, &res);
	test_assert(res.ret == 0 && res.count_sum == 1000000000000ULL);
	doc = t_strdup_printf(DOC_HEAD DOC_RECORD DOC_RECORD DOC_TAIL, "o",
			      "192.0.2.1", "500000000000",
			      "192.0.2.2", "500000000001");
	parse_string(doc, &res);
	test_assert(res.ret == -1);
	test_assert(res.error != NULL && strstr(res.error,
		"the report's <count>s add up to more than 1000000000000 "
		"messages") != NULL);
	doc = t_strdup_printf(DOC_HEAD DOC_RECORD DOC_RECORD DOC_TAIL, "o",
			      "192.0.2.1", "9223372036854775807",
			      "192.0.2.2", "9223372036854775807");
	parse_string(doc, &res);
	test_assert(res.ret == -1 && res.records == 0);
	test_end();
}

/* Issue 9 item 2: a CR/LF in report_id or org_name wrote lines into the
   server log; no stored value keeps a control character. */
static void test_parse_control_characters_in_values(void)
{
	const char *doc =
		"<feedback><report_metadata>"
		"<org_name>Evil&#10;lmtp: Error: FORGED-LOG-LINE</org_name>"
		"<email>a@b\r\nc</email>"
		"<extra_contact_info>x&#13;&#10;\ty&#127;z\xc2\x85&#x9f;\xc2\xa0"
		"</extra_contact_info>"
		"<report_id>\n r1&#10;&#10;r2 \t</report_id>"
		"<date_range><begin>1</begin><end>2</end></date_range>"
		"<error>one&#10;two</error>"
		"</report_metadata>"
		"<policy_published><domain>d</domain></policy_published>"
		"<record><row><source_ip>192.0.2.1</source_ip><count>1</count>"
		"<policy_evaluated><reason><type>forwarded</type>"
		"<comment>line1&#10;line2</comment></reason></policy_evaluated>"
		"</row><auth_results><dkim><domain>d</domain>"
		"<human_result>a&#9;b</human_result></dkim></auth_results>"
		"</record></feedback>";
	struct test_mem_reader reader = {
		.data = (const void *)doc, .size = strlen(doc)
	};
	const struct dmarc_report *report;
	const struct dmarc_record *record;
	struct dmarc_parser *parser;
	const char *error;

	test_begin("parse: control characters in values");
	parser = test_parser_init(test_mem_read, &reader,
				   test_default_limits());
	test_assert(dmarc_parser_read_header(parser, &report, &error) == 0);
	test_assert_strcmp(report->org_name,
			   "Evil lmtp: Error: FORGED-LOG-LINE");
	test_assert_strcmp(report->email, "a@b c");
	test_assert_strcmp(report->extra_contact_info,
		"x   y\xef\xbf\xbdz\xef\xbf\xbd\xef\xbf\xbd\xc2\xa0");
	test_assert_strcmp(report->report_id, "r1  r2");
	test_assert_strcmp(array_idx_elem(&report->errors, 0), "one two");
	test_assert(dmarc_parser_next_record(parser, &record, &error) == 1);
	test_assert_strcmp(((const struct dmarc_policy_override *)array_front(&record->reasons))->comment,
			   "line1 line2");
	test_assert_strcmp(((const struct dmarc_auth_result *)array_front(&record->auth_results))->human_result,
			   "a b");
	test_assert(dmarc_parser_next_record(parser, &record, &error) == 0);
	test_assert(strstr(t_strarray_join(dmarc_parser_get_warnings(parser),
					   " "),
			   "control characters in values") != NULL);
	dmarc_parser_deinit(&parser);
	test_end();
}

/* Issue 9 item 12: NUL and other C0 bytes in an ISO-8859-1 report got
   it rejected, though they are repaired in UTF-8 ones. */
static void test_parse_latin1_control_bytes(void)
{
	static const char doc[] =
		"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>\n"
		"<feedback><report_metadata><org_name>Caf\xe9\0\x01x</org_name>"
		"<report_id>r</report_id>\x1b<date_range><begin>1</begin>"
		"<end>2</end></date_range></report_metadata>"
		"<policy_published><domain>d</domain></policy_published>"
		"<record><row><source_ip>192.0.2.1</source_ip><count>1</count>"
		"</row></record></feedback>";
	struct test_mem_reader reader = {
		.data = (const void *)doc, .size = sizeof(doc) - 1
	};
	const struct dmarc_report *report;
	const struct dmarc_record *record;
	struct dmarc_parser *parser;
	const char *error;

	test_begin("parse: control bytes in an ISO-8859-1 report repaired");
	parser = test_parser_init(test_mem_read, &reader,
				   test_default_limits());
	test_assert(dmarc_parser_read_header(parser, &report, &error) == 0);
	test_assert_strcmp(report->org_name,
			   "Caf\xc3\xa9\xef\xbf\xbd\xef\xbf\xbdx");
	test_assert(dmarc_parser_next_record(parser, &record, &error) == 1);
	test_assert(dmarc_parser_next_record(parser, &record, &error) == 0);
	test_assert(strstr(t_strarray_join(dmarc_parser_get_warnings(parser),
					   " "),
			   "replaced 3 invalid UTF-8 or non-XML bytes") != NULL);
	dmarc_parser_deinit(&parser);
	test_end();
}

static void test_parse_trailing_and_leading(void)
{
	struct parse_result res;
	const char *doc = make_doc("o", "192.0.2.1", "1");

	test_begin("parse: leading space, BOM, trailing junk");
	parse_string(t_strconcat("\n  ", doc, NULL), &res);
	test_assert(res.ret == 0);
	test_assert(strstr(res.warnings, "whitespace before") != NULL);
	parse_string(t_strconcat("\xef\xbb\xbf", doc, NULL), &res);
	test_assert(res.ret == 0 && res.records == 1);
	test_assert(res.warnings[0] == '\0');
	parse_data(t_strconcat(doc, "\0\0garbage<x>", NULL),
		   strlen(doc) + 12, test_default_limits(), &res);
	test_assert(res.ret == 0);
	test_assert(strstr(res.warnings, "after the root element") != NULL);
	test_end();
}

static void test_parse_windows_1252(void)
{
	const char *doc =
		"<?xml version=\"1.0\" encoding=\"windows-1252\"?>\n"
		"<feedback><report_metadata><org_name>Caf\xe9 \x80</org_name>"
		"<report_id>r</report_id><date_range><begin>1</begin>"
		"<end>2</end></date_range></report_metadata>"
		"<policy_published><domain>d</domain></policy_published>"
		"<record><row><source_ip>192.0.2.1</source_ip><count>1</count>"
		"</row></record></feedback>";
	struct test_mem_reader reader = {
		.data = (const void *)doc, .size = strlen(doc)
	};
	const struct dmarc_report *report;
	struct dmarc_parser *parser;
	const char *error;

	test_begin("parse: windows-1252 converted by libxml2");
	parser = test_parser_init(test_mem_read, &reader,
				   test_default_limits());
	test_assert(dmarc_parser_read_header(parser, &report, &error) == 0);
	test_assert_strcmp(report->org_name, "Caf\xc3\xa9 \xe2\x82\xac");
	dmarc_parser_deinit(&parser);
	test_end();
}

/* The AOL report of the corpus is in a zip: unpack it here with
   libarchive (dmarc-unpack is tested on its own). */
static void test_parse_aol_windows_1252_zip(void)
{
	const char *name = "dmarcgo--aol.com!georgestarcher.com!1342497600!"
		"1342584000.zip";
	struct archive_entry *entry;
	struct archive *archive;
	struct parse_result res;
	buffer_t *data, *xml;
	char buf[4096];
	ssize_t ret;

	test_begin("parse: AOL windows-1252 report from the corpus zip");
	data = read_corpus_file("aggregate", name);
	if (data != NULL) {
		xml = t_buffer_create(4096);
		archive = archive_read_new();
		archive_read_support_format_zip(archive);
		test_assert(archive_read_open_memory(archive, data->data,
			    data->used) == ARCHIVE_OK);
		test_assert(archive_read_next_header(archive, &entry) ==
			    ARCHIVE_OK);
		while ((ret = archive_read_data(archive, buf,
						sizeof(buf))) > 0)
			buffer_append(xml, buf, ret);
		test_assert(ret == 0);
		archive_read_free(archive);
		test_assert(strstr(t_strndup(xml->data, xml->used),
				   "windows-1252") != NULL);
		parse_data(xml->data, xml->used, test_default_limits(), &res);
		test_assert(res.ret == 0 && res.records > 0);
	}
	test_end();
}

/* A read function that fails after the first bytes. */
struct failing_reader {
	struct test_mem_reader mem;
	size_t fail_at;
};

static ssize_t failing_read(void *context, void *buf, size_t size,
			    const char **error_r)
{
	struct failing_reader *reader = context;

	if (reader->mem.pos >= reader->fail_at) {
		*error_r = "read(attachment) failed: Input/output error";
		return -1;
	}
	if (size > reader->fail_at - reader->mem.pos)
		size = reader->fail_at - reader->mem.pos;
	return test_mem_read(&reader->mem, buf, size, error_r);
}

static void test_parse_read_errors(void)
{
	const char *doc = make_doc("o", "192.0.2.1", "1");
	struct failing_reader reader;
	struct parse_result res;
	size_t fail_at[] = { 0, 10, 300, strlen(doc) - 3 };
	unsigned int i;

	test_begin("parse: read errors and unsupported encodings");
	for (i = 0; i < N_ELEMENTS(fail_at); i++) {
		i_zero(&reader);
		reader.mem.data = (const void *)doc;
		reader.mem.size = strlen(doc);
		reader.fail_at = fail_at[i];
		parse_stream(failing_read, &reader, test_default_limits(),
			     &res);
		test_assert_idx(res.ret == -1, i);
		test_assert_strcmp_idx(res.error, "read(attachment) failed: "
				       "Input/output error", i);
	}
	parse_string(t_strconcat("<?xml version=\"1.0\" encoding=\"x-nope\"?>",
				 strchr(doc, '\n'), NULL), &res);
	test_assert(res.ret == -1);
	test_assert(strstr(res.error, "unsupported encoding \"x-nope\"") != NULL);
	/* UTF-7 would hide markup from the filter: "+ADw-" is '<' */
	parse_string("<?xml version=\"1.0\" encoding=\"UTF-7\"?>"
		     "+ADw-+ACE-DOCTYPE feedback +AFs-+AF0-+AD4-<feedback/>", &res);
	test_assert(res.ret == -1);
	test_assert(strstr(res.error, "unsupported encoding \"UTF-7\"") != NULL);
	test_end();
}

/* libxml2 must never write to stderr: catch fd 2 while parsing broken
   documents. */
static void test_parse_no_stderr(void)
{
	static const char *const docs[] = {
		"<feedback><a></b></feedback>",
		"<?xml version=\"1.0\" encoding=\"x-nope\"?><feedback/>",
		"<?xml version=\"1.0\" encoding=\"UTF-16\"?><feedback/>",
		"<feedback><report_metadata attr=\"1\" attr=\"2\"/></feedback>",
		"<feedback xmlns:a=\"\"><a:x/></feedback>",
		"<feedback><report_metadata><org_name>x</org_name></report_metadata>",
	};
	char path[] = "/tmp/test-dmarc-parse-stderr.XXXXXX";
	struct parse_result res;
	struct stat st;
	unsigned int i;
	int fd, old_stderr;

	test_begin("parse: libxml2 errors never reach stderr");
	fd = mkstemp(path);
	if (fd == -1)
		i_fatal("mkstemp(%s) failed: %m", path);
	i_unlink(path);
	old_stderr = dup(STDERR_FILENO);
	if (old_stderr == -1 || dup2(fd, STDERR_FILENO) == -1)
		i_fatal("dup2() failed: %m");
	for (i = 0; i < N_ELEMENTS(docs); i++) {
		parse_string(docs[i], &res);
		test_assert_idx(res.ret == -1 && res.error != NULL, i);
	}
	if (dup2(old_stderr, STDERR_FILENO) == -1)
		i_fatal("dup2() failed: %m");
	i_close_fd(&old_stderr);
	test_assert(fstat(fd, &st) == 0 && st.st_size == 0);
	i_close_fd(&fd);
	test_end();
}

static size_t rss_bytes(void)
{
	unsigned long pages_total, pages_rss;
	FILE *f = fopen("/proc/self/statm", "r");
	int ret;

	if (f == NULL)
		return 0;
	ret = fscanf(f, "%lu %lu", &pages_total, &pages_rss);
	fclose(f);
	return ret == 2 ? pages_rss * (size_t)sysconf(_SC_PAGESIZE) : 0;
}

/* A read function that generates a big report on the fly: memory use
   must not depend on the number of records. */
struct gen_reader {
	unsigned int records, next;
	string_t *pending;
	size_t pos;
	bool head_done, tail_done;
};

static ssize_t gen_read(void *context, void *buf, size_t size,
			const char **error_r ATTR_UNUSED)
{
	struct gen_reader *gen = context;
	size_t n;

	while (gen->pos == str_len(gen->pending)) {
		str_truncate(gen->pending, 0);
		gen->pos = 0;
		if (!gen->head_done) {
			str_printfa(gen->pending, DOC_HEAD, "generator");
			gen->head_done = TRUE;
		} else if (gen->next < gen->records) {
			unsigned int i;

			for (i = 0; i < 64 && gen->next < gen->records; i++) {
				gen->next++;
				str_printfa(gen->pending, DOC_RECORD,
					    t_strdup_printf("10.%u.%u.%u",
						(gen->next >> 16) & 0xff,
						(gen->next >> 8) & 0xff,
						gen->next & 0xff),
					    dec2str(gen->next % 7 + 1));
			}
		} else if (!gen->tail_done) {
			str_append(gen->pending, DOC_TAIL);
			gen->tail_done = TRUE;
		} else {
			return 0;
		}
	}
	n = I_MIN(size, str_len(gen->pending) - gen->pos);
	memcpy(buf, str_data(gen->pending) + gen->pos, n);
	gen->pos += n;
	return n;
}

static void test_parse_generated_200k(void)
{
	const struct dmarc_report *report;
	const struct dmarc_record *record;
	struct dmarc_parser *parser;
	struct gen_reader gen;
	uint64_t expected_sum = 0, count_sum = 0;
	unsigned int i, records = 0;
	size_t rss_early = 0, rss_end;
	struct timespec start, end;
	const char *error;
	double secs;
	int ret;

	test_begin("parse: 200,000 generated records, streamed, flat memory");
	i_zero(&gen);
	gen.records = 200000;
	gen.pending = str_new(default_pool, 65536);
	for (i = 1; i <= gen.records; i++)
		expected_sum += i % 7 + 1;
	clock_gettime(CLOCK_MONOTONIC, &start);
	parser = test_parser_init(gen_read, &gen, test_default_limits());
	test_assert(dmarc_parser_read_header(parser, &report, &error) == 0);
	while ((ret = dmarc_parser_next_record(parser, &record,
					       &error)) > 0) {
		records++;
		count_sum += record->count;
		if (records == 10000)
			rss_early = rss_bytes();
	}
	rss_end = rss_bytes();
	test_assert(ret == 0);
	test_assert(records == 200000);
	test_assert(count_sum == expected_sum);
	/* 190,000 more records may not cost memory: a leak of even 50
	   bytes per record would be 9.5 MB */
	test_assert(rss_end < rss_early + 8 * 1024 * 1024);
	dmarc_parser_deinit(&parser);
	clock_gettime(CLOCK_MONOTONIC, &end);
	secs = (end.tv_sec - start.tv_sec) +
		(end.tv_nsec - start.tv_nsec) / 1e9;
	if (getenv("DMARC_PARSE_BENCH") != NULL)
		printf("200000 records in %.3f s (%.0f records/s)\n",
		       secs, 200000 / secs);
	str_free(&gen.pending);
	test_end();
}

/* Everything a parse yields, records included, as one string: what two
   parses of the same document must agree on. */
static const char *parse_input_summary(struct istream *input)
{
	const struct dmarc_report *report;
	const struct dmarc_record *record;
	const struct dmarc_auth_result *auth;
	struct dmarc_parser *parser;
	string_t *str = t_str_new(4096);
	const char *error;
	int ret;

	parser = dmarc_parser_init(input, test_default_limits());
	if (dmarc_parser_read_header(parser, &report, &error) < 0) {
		str_printfa(str, "header error: %s", error);
	} else {
		str_printfa(str, "%s|%s|%s|%"PRId64"|%"PRId64"|%s|%s|%d\n",
			    report->org_name, report->report_id,
			    report->policy.domain, report->date_begin,
			    report->date_end, report->policy.p,
			    report->version == NULL ? "" : report->version,
			    report->policy.pct);
		while ((ret = dmarc_parser_next_record(parser, &record,
						       &error)) > 0) {
			str_printfa(str, "%s|%d|%"PRId64"|%s|%s|%s|%s|%s|%s|%s",
				record->source_ip, record->source_ip_valid,
				record->count, record->disposition,
				record->dkim, record->spf, record->header_from,
				record->envelope_from, record->envelope_to,
				record->extensions);
			array_foreach(&record->auth_results, auth) {
				str_printfa(str, "|%d:%s:%s:%s:%s", auth->type,
					    auth->domain, auth->selector,
					    auth->scope, auth->result);
			}
			str_append_c(str, '\n');
		}
		str_printfa(str, "end %d %s\n", ret, ret < 0 ? error : "");
	}
	str_printfa(str, "warnings: %s\nanomalies: %s\n",
		    t_strarray_join(dmarc_parser_get_warnings(parser), "; "),
		    t_strarray_join(dmarc_parser_get_anomalies(parser), "; "));
	dmarc_parser_deinit(&parser);
	return str_c(str);
}

/* Issue 13 point 6: the parser is also fed in small blocks (a read gives
   1 byte up to a few KiB) with identical results: every plain XML file of
   the corpus, valid and invalid, and documents built to put BOMs,
   comments, CDATA, character references, invalid UTF-8 and long tags
   across block boundaries. */
static void test_parse_small_blocks(void)
{
	static const size_t block_sizes[] = { 1, 2, 3, 7, 64, 1000, 4096 };
	static const char *const built[] = {
		"\xef\xbb\xbf<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		"<!-- a comment -->\n<feedback><report_metadata><org_name>"
		"<![CDATA[A & B]]> &#233; \xff\xfe x</org_name><report_id>r1"
		"</report_id><date_range><begin>1</begin><end>2</end>"
		"</date_range></report_metadata><policy_published><domain>"
		"example.com</domain><p>none</p></policy_published><record>"
		"<row><source_ip>192.0.2.1</source_ip><count>3</count>"
		"<policy_evaluated><disposition>none</disposition><dkim>pass"
		"</dkim><spf>fail</spf></policy_evaluated></row><identifiers>"
		"<header_from>example.com</header_from></identifiers>"
		"<auth_results><dkim><domain>example.com</domain><selector>"
		"s</selector><result>pass</result></dkim></auth_results>"
		"</record></feedback>\ntrailing data",
		"   \n<feedback><report_metadata><org_name>a < b</org_name>"
		"<report_id>r2</report_id><date_range><begin>1</begin><end>2"
		"</end></date_range></report_metadata><policy_published>"
		"<domain>example.com</domain><p>reject</p></policy_published>"
		"<record><row><source_ip>2001:db8::1</source_ip><count>1"
		"</count></row></record></feedback>",
		/* cut short */
		"<feedback><report_metadata><org_name>x</org_name>",
	};
	const char *const dirs[] = { "aggregate", "aggregate-invalid" };
	struct istream *input;
	const char *whole, *const *names;
	const buffer_t *data;
	unsigned int i, j, k, docs = 0;

	test_begin("parse: fed in small blocks, the same results");
	for (i = 0; i < N_ELEMENTS(dirs) + 1; i++) {
		ARRAY_TYPE(const_string) names_arr;
		ARRAY(const buffer_t *) datas;

		t_array_init(&names_arr, 64);
		t_array_init(&datas, 64);
		if (i == N_ELEMENTS(dirs)) {
			for (j = 0; j < N_ELEMENTS(built); j++) {
				buffer_t *buf = t_buffer_create(strlen(built[j]));

				buffer_append(buf, built[j], strlen(built[j]));
				array_push_back(&names_arr, &built[j]);
				data = buf;
				array_push_back(&datas, &data);
			}
		} else if (test_corpus_dir() != NULL) {
			names = test_corpus_list(dirs[i]);
			for (; *names != NULL; names++) {
				if (!str_ends_with(*names, ".xml"))
					continue;
				data = read_corpus_file(dirs[i], *names);
				if (data == NULL)
					continue;
				array_push_back(&names_arr, names);
				array_push_back(&datas, &data);
			}
		}
		for (j = 0; j < array_count(&datas); j++) T_BEGIN {
			data = array_idx_elem(&datas, j);
			input = i_stream_create_from_data(data->data, data->used);
			whole = parse_input_summary(input);
			i_stream_unref(&input);
			for (k = 0; k < N_ELEMENTS(block_sizes); k++) {
				/* a byte at a time is slow on the 0.9 MB
				   report: a few KiB per read there */
				if (block_sizes[k] < 64 && data->used > 128*1024)
					continue;
				input = test_istream_create_data(data->data,
								 data->used);
				test_istream_set_max_buffer_size(input,
								 block_sizes[k]);
				if (strcmp(parse_input_summary(input), whole) != 0) {
					i_error("%s: %zu-byte blocks differ",
						array_idx_elem(&names_arr, j),
						block_sizes[k]);
					test_assert_idx(FALSE, j);
				}
				i_stream_unref(&input);
			}
			docs++;
		} T_END;
	}
	test_assert(docs >= N_ELEMENTS(built));
	if (test_corpus_dir() != NULL)
		test_assert(docs >= 40);
	test_end();
}

int main(void)
{
	static void (*const test_functions[])(void) = {
		test_parse_corpus_aggregate,
		test_parse_corpus_expected_figures,
		test_parse_rfc9990_fields,
		test_parse_mail_auth_fields,
		test_parse_acme_override_reason,
		test_parse_two_dkim_results,
		test_parse_quirks,
		test_parse_corpus_invalid,
		test_parse_case_normalised,
		test_parse_generated_values,
		test_parse_header_errors,
		test_parse_record_enums,
		test_parse_begin_after_end_warning,
		test_parse_key_not_cut,
		test_parse_extensions_format_version,
		test_parse_namespaces,
		test_parse_hostile_dtd,
		test_parse_org_name_repairs,
		test_parse_limits,
		test_parse_truncated,
		test_parse_namespace_and_attribute_bounds,
		test_parse_auth_results_bounded,
		test_parse_count_total_bounded,
		test_parse_control_characters_in_values,
		test_parse_latin1_control_bytes,
		test_parse_trailing_and_leading,
		test_parse_windows_1252,
		test_parse_aol_windows_1252_zip,
		test_parse_read_errors,
		test_parse_no_stderr,
		test_parse_generated_200k,
		test_parse_small_blocks,
		NULL
	};
	return test_run(test_functions);
}
