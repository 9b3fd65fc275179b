/* Unit tests for dmarc-xml-filter.c: what the byte filter passes, repairs
   and refuses, without libxml2 behind it. */

#include "lib.h"
#include "array.h"
#include "buffer.h"
#include "str.h"
#include "istream.h"
#include "test-dmarc-common.h"
#include "dmarc-xml-filter.h"

struct filter_result {
	int ret;		/* 0 read to the end, -1 refused */
	const char *error;
	const char *output;
	const char *warnings;	/* joined by "; " */
};

static void filter_data(const void *data, size_t size, unsigned int max_depth,
			size_t chunk, struct filter_result *res_r)
{
	struct test_mem_reader reader = { .data = data, .size = size };
	struct dmarc_xml_filter *filter;
	struct istream *input;
	ARRAY_TYPE(const_string) warnings;
	const unsigned char *out;
	const char *error;
	string_t *str = t_str_new(size + 64);
	size_t out_size;
	int ret;

	i_zero(res_r);
	input = test_istream_create_func(test_mem_read, &reader, 16384);
	filter = dmarc_xml_filter_init(input, max_depth);
	i_stream_unref(&input);
	if (dmarc_xml_filter_fill(filter, &error) < 0)
		ret = -1;
	else {
		while ((ret = dmarc_xml_filter_read(filter, chunk, &out,
						    &out_size, &error)) > 0) {
			test_assert(out_size <= chunk);
			str_append_data(str, out, out_size);
		}
	}
	res_r->ret = ret;
	res_r->error = ret < 0 ? t_strdup(error) : NULL;
	res_r->output = str_c(str);
	t_array_init(&warnings, 4);
	dmarc_xml_filter_get_warnings(filter, pool_datastack_create(),
				      &warnings);
	array_append_zero(&warnings);
	res_r->warnings = t_strarray_join(array_front(&warnings), "; ");
	dmarc_xml_filter_deinit(&filter);
	test_assert(filter == NULL);
}

static void filter_string(const char *doc, struct filter_result *res_r)
{
	filter_data(doc, strlen(doc), 32, 4096, res_r);
}

static void test_xml_filter_passes_wellformed(void)
{
	static const char doc[] =
		"<?xml version=\"1.0\"?>\n<feedback><a x='1'>t &amp; "
		"&#65;</a><!-- c --><![CDATA[<x>]]></feedback>";
	struct filter_result res;

	test_begin("xml filter: well-formed XML passes unchanged");
	filter_string(doc, &res);
	test_assert(res.ret == 0);
	test_assert_strcmp(res.output, doc);
	test_assert_strcmp(res.warnings, "");
	/* in small chunks the same */
	filter_data(doc, strlen(doc), 32, 3, &res);
	test_assert(res.ret == 0);
	test_assert_strcmp(res.output, doc);
	test_end();
}

static void test_xml_filter_refuses(void)
{
	static const struct {
		const char *doc;
		const char *error;
	} cases[] = {
		{ "", "empty document" },
		{ "   \n ", "empty document" },
		{ "{\"a\": 1}", "not an XML document" },
		{ "<?xml version=\"1.0\" encoding=\"utf-7\"?><feedback/>",
		  "unsupported encoding" },
		{ "<!DOCTYPE feedback [<!ENTITY a \"b\">]><feedback/>",
		  "DOCTYPE" },
		{ "<html><body/></html>", "root element <html>" },
	};
	struct filter_result res;
	unsigned int i;

	test_begin("xml filter: refused input says why");
	for (i = 0; i < N_ELEMENTS(cases); i++) {
		filter_string(cases[i].doc, &res);
		test_assert_idx(res.ret < 0, i);
		test_assert_idx(res.error != NULL &&
				strstr(res.error, cases[i].error) != NULL, i);
	}
	test_end();
}

static void test_xml_filter_repairs(void)
{
	struct filter_result res;

	test_begin("xml filter: stray '<' and '&', invalid UTF-8, wrapper");
	filter_string("<feedback><e>a < b & c</e></feedback>", &res);
	test_assert(res.ret == 0);
	test_assert_strcmp(res.output,
			   "<feedback><e>a &lt; b &amp; c</e></feedback>");
	test_assert(strstr(res.warnings, "stray '<'") != NULL);
	test_assert(strstr(res.warnings, "bare '&'") != NULL);

	filter_string("<feedback><e>\xff</e></feedback>", &res);
	test_assert(res.ret == 0);
	test_assert_strcmp(res.output,
			   "<feedback><e>\xef\xbf\xbd</e></feedback>");
	test_assert(strstr(res.warnings, "invalid UTF-8") != NULL);

	filter_string("<xs:schema a='b'><feedback/>", &res);
	test_assert(res.ret == 0);
	test_assert(strstr(res.output, "<feedback/>") != NULL);
	test_assert(strstr(res.output, "schema") == NULL);
	test_assert(strstr(res.warnings, "stray <xs:schema>") != NULL);

	filter_string("  <?xml version=\"1.0\"?><feedback/>junk", &res);
	test_assert(res.ret == 0);
	test_assert(strncmp(res.output, "<?xml", 5) == 0);
	test_assert(strstr(res.output, "junk") == NULL);
	test_assert(strstr(res.warnings, "whitespace before") != NULL);
	test_assert(strstr(res.warnings, "after the root") != NULL);
	test_end();
}

static void test_xml_filter_depth(void)
{
	struct filter_result res;
	string_t *doc = t_str_new(1024);
	unsigned int i;

	test_begin("xml filter: nesting bounded by max_depth");
	str_append(doc, "<feedback>");
	for (i = 0; i < 40; i++)
		str_append(doc, "<a>");
	filter_data(str_data(doc), str_len(doc), 32, 4096, &res);
	test_assert(res.ret < 0);
	test_assert(res.error != NULL &&
		    strstr(res.error, "dmarcreport_max_xml_depth") != NULL);
	test_end();
}

int main(void)
{
	static void (*const test_functions[])(void) = {
		test_xml_filter_passes_wellformed,
		test_xml_filter_refuses,
		test_xml_filter_repairs,
		test_xml_filter_depth,
		NULL
	};
	return test_run(test_functions);
}
