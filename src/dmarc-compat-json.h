#ifndef DMARC_COMPAT_JSON_H
#define DMARC_COMPAT_JSON_H

/* A streaming JSON reader for the SMTP TLS report parser, over Dovecot's
   own JSON parser: lib's json-parser.h in 2.3, lib-json's json-istream.h
   in 2.4 (the 2.3 parser is gone there). Both are pull parsers over an
   istream that keep only the current value and the nesting, so memory
   does not grow with the document. The reader hands out one token at a
   time with the member name it belongs to (NULL in an array and for the
   root). Both branches are built and tested by tools/test.sh (2.4 in
   its Debian 13 stage). */

#include "istream.h"

enum dmarc_json_token {
	DMARC_JSON_OBJECT,
	DMARC_JSON_OBJECT_END,
	DMARC_JSON_ARRAY,
	DMARC_JSON_ARRAY_END,
	DMARC_JSON_STRING,
	DMARC_JSON_NUMBER,
	DMARC_JSON_LITERAL,	/* true, false, null */
};

#if DOVECOT_PREREQ(2, 4, 0)
#include "json-istream.h"

struct dmarc_json {
	struct json_istream *input;
	unsigned int depth;
	/* the root value ended: what follows is not read (as on 2.3) */
	bool ended;
};

static inline struct dmarc_json *dmarc_json_init(struct istream *input)
{
	struct json_limits limits = {
		.max_name_size = JSON_DEFAULT_MAX_NAME_SIZE,
		/* the document is bounded as a whole by the caller */
		.max_string_size = SIZE_MAX,
		.max_nesting = UINT_MAX,
		.max_list_items = UINT_MAX,
	};
	struct dmarc_json *json = i_new(struct dmarc_json, 1);

	json->input = json_istream_create(input, JSON_ISTREAM_TYPE_NORMAL,
					  &limits, 0);
	return json;
}

/* 1 = a token, 0 = the document ended, -1 = error (see deinit). The
   name and value stay valid until the next call. */
static inline int
dmarc_json_next(struct dmarc_json *json, enum dmarc_json_token *token_r,
		const char **name_r, const char **value_r)
{
	struct json_node node;
	size_t size;
	int ret;

	if (json->ended)
		return 0;
	ret = json_istream_walk(json->input, &node);
	if (ret <= 0) {
		/* the input ended (or broke) before the root value did */
		return -1;
	}
	*name_r = node.name;
	*value_r = NULL;
	switch (node.type) {
	case JSON_TYPE_OBJECT:
	case JSON_TYPE_ARRAY:
		if (!json_node_is_end(&node)) {
			json->depth++;
			*token_r = node.type == JSON_TYPE_OBJECT ?
				DMARC_JSON_OBJECT : DMARC_JSON_ARRAY;
			break;
		}
		*token_r = node.type == JSON_TYPE_OBJECT ?
			DMARC_JSON_OBJECT_END : DMARC_JSON_ARRAY_END;
		if (json->depth > 0 && --json->depth == 0)
			json->ended = TRUE;
		break;
	case JSON_TYPE_STRING: {
		/* size is set by the call: not in the same argument list */
		const unsigned char *data = json_node_get_data(&node, &size);

		*token_r = DMARC_JSON_STRING;
		*value_r = t_strndup(data, size);
		break;
	}
	case JSON_TYPE_NUMBER:
		*token_r = DMARC_JSON_NUMBER;
		*value_r = json_node_as_str(&node);
		break;
	default:
		*token_r = DMARC_JSON_LITERAL;
		*value_r = json_node_get_str(&node);
		break;
	}
	if (json->depth == 0)
		json->ended = TRUE;
	return 1;
}

static inline int dmarc_json_deinit(struct dmarc_json **_json,
				    const char **error_r)
{
	struct dmarc_json *json = *_json;
	int ret = 0;

	*_json = NULL;
	if (json_istream_failed(json->input)) {
		*error_r = t_strdup(json_istream_get_error(json->input));
		ret = -1;
	} else if (!json->ended) {
		*error_r = "unexpected end of the JSON text";
		ret = -1;
	}
	json_istream_destroy(&json->input);
	i_free(json);
	return ret;
}
#else
#include "json-parser.h"

struct dmarc_json {
	struct json_parser *parser;
	/* the member name of the next value */
	string_t *name;
	bool have_name;
	unsigned int depth;
	bool ended;
};

static inline struct dmarc_json *dmarc_json_init(struct istream *input)
{
	struct dmarc_json *json = i_new(struct dmarc_json, 1);

	/* NO_ROOT_OBJECT: the root's braces are tokens too, so the end of
	   the document is seen (and what follows it refused) */
	json->parser = json_parser_init_flags(input, JSON_PARSER_NO_ROOT_OBJECT);
	json->name = str_new(default_pool, 64);
	return json;
}

static inline int
dmarc_json_next(struct dmarc_json *json, enum dmarc_json_token *token_r,
		const char **name_r, const char **value_r)
{
	enum json_type type;
	const char *value;

	if (json->ended)
		return 0;
	if (json_parse_next(json->parser, &type, &value) <= 0)
		return -1;
	if (type == JSON_TYPE_OBJECT_KEY) {
		str_truncate(json->name, 0);
		str_append(json->name, value);
		json->have_name = TRUE;
		if (json_parse_next(json->parser, &type, &value) <= 0)
			return -1;
	}
	*name_r = json->have_name ? t_strdup(str_c(json->name)) : NULL;
	json->have_name = FALSE;
	*value_r = NULL;
	switch (type) {
	case JSON_TYPE_OBJECT:
		json->depth++;
		*token_r = DMARC_JSON_OBJECT;
		break;
	case JSON_TYPE_ARRAY:
		json->depth++;
		*token_r = DMARC_JSON_ARRAY;
		break;
	case JSON_TYPE_OBJECT_END:
	case JSON_TYPE_ARRAY_END:
		*token_r = type == JSON_TYPE_OBJECT_END ?
			DMARC_JSON_OBJECT_END : DMARC_JSON_ARRAY_END;
		if (json->depth > 0 && --json->depth == 0)
			json->ended = TRUE;
		break;
	case JSON_TYPE_STRING:
		/* valid until the next call: no copy of a long string */
		*token_r = DMARC_JSON_STRING;
		*value_r = value;
		break;
	case JSON_TYPE_NUMBER:
		*token_r = DMARC_JSON_NUMBER;
		*value_r = value;
		break;
	default:
		*token_r = DMARC_JSON_LITERAL;
		*value_r = type == JSON_TYPE_TRUE ? "true" :
			type == JSON_TYPE_FALSE ? "false" : "null";
		if (json->depth == 0)
			json->ended = TRUE;
		break;
	}
	return 1;
}

static inline int dmarc_json_deinit(struct dmarc_json **_json,
				    const char **error_r)
{
	struct dmarc_json *json = *_json;
	const char *error;
	int ret = 0;

	*_json = NULL;
	if (json_parser_deinit(&json->parser, &error) < 0) {
		*error_r = error;
		ret = -1;
	}
	str_free(&json->name);
	i_free(json);
	return ret;
}
#endif

#endif
