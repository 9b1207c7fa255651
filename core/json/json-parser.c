/*
 * The JSON parser (see json-int.h): recursive descent over one complete
 * token sequence, with QEMU's grammar (single-quoted strings, the escape
 * \' in both kinds of string, no duplicate keys) and its error messages.
 * Strings come out in modified UTF-8 (U+0000 as C0 80).
 */
#include <errno.h>
#include <string.h>

#include <blockd/error.h>

#include "json/json-int.h"
#include "json/json-uint64.h"
#include "json/mod-utf8.h"

/* How much of an error's detail QEMU keeps. */
#define PARSE_ERROR_DETAIL_MAX 1023

typedef struct Parser {
    const BdJsonToken *tokens;
    guint n;
    const char *text;
    guint pos;
    GError *err;                /* the first error only, as QEMU reports */
} Parser;

static const BdJsonToken *parser_peek(Parser *p)
{
    return p->pos < p->n ? &p->tokens[p->pos] : NULL;
}

static const BdJsonToken *parser_pop(Parser *p)
{
    const BdJsonToken *t = parser_peek(p);

    if (t) {
        p->pos++;
    }
    return t;
}

static const char *token_text(Parser *p, const BdJsonToken *t)
{
    return p->text + t->offset;
}

/*
 * Only the first error of a value is reported, as QEMU does; QEMU formats
 * the detail into a buffer of 1024 bytes, so it is cut at 1023 bytes
 * (which a long invalid keyword reaches).
 */
static void G_GNUC_PRINTF(2, 3) parse_error(Parser *p, const char *fmt, ...)
{
    va_list ap;

    if (p->err) {
        return;
    }
    va_start(ap, fmt);
    g_autofree char *msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    p->err = g_error_new(BD_ERROR, BD_ERROR_GENERIC, "JSON parse error, %.*s",
                         PARSE_ERROR_DETAIL_MAX, msg);
}

static JsonNode *parse_value(Parser *p);

/* The value of four hex digits at @s, or -1 (stops at a non-digit). */
static long hex4(const char *s)
{
    long v = 0;

    for (int i = 0; i < 4; i++) {
        if (!g_ascii_isxdigit(s[i])) {
            return -1;
        }
        v = (v << 4) | g_ascii_xdigit_value(s[i]);
    }
    return v;
}

static JsonNode *parse_string(Parser *p, const BdJsonToken *t)
{
    const char *ptr = token_text(p, t);
    char quote = *ptr++;
    g_autoptr(GString) out = g_string_new(NULL);

    while (*ptr != quote) {
        if (*ptr == '\\') {
            const char *beg = ptr++;
            char c = *ptr++;
            long cp;

            switch (c) {
            case '"': case '\'': case '\\': case '/':
                g_string_append_c(out, c);
                break;
            case 'b':
                g_string_append_c(out, '\b');
                break;
            case 'f':
                g_string_append_c(out, '\f');
                break;
            case 'n':
                g_string_append_c(out, '\n');
                break;
            case 'r':
                g_string_append_c(out, '\r');
                break;
            case 't':
                g_string_append_c(out, '\t');
                break;
            case 'u':
                cp = hex4(ptr);
                if (cp < 0) {
                    /* quote what there is of the escape, up to 6 bytes */
                    parse_error(p, "%.*s is not a valid Unicode character",
                                (int)strnlen(beg, 6), beg);
                    return NULL;
                }
                ptr += 4;
                if (cp >= 0xD800 && cp <= 0xDBFF &&
                    ptr[0] == '\\' && ptr[1] == 'u') {
                    long low = hex4(ptr + 2);

                    if (low >= 0xDC00 && low <= 0xDFFF) {
                        cp = 0x10000 + ((cp & 0x3FF) << 10) + (low & 0x3FF);
                        ptr += 6;
                    } else {
                        cp = -1;
                    }
                }
                if (!bd_mod_utf8_append(out, cp)) {
                    parse_error(p, "%.*s is not a valid Unicode character",
                                (int)(ptr - beg), beg);
                    return NULL;
                }
                break;
            default:
                parse_error(p, "invalid escape sequence in string");
                return NULL;
            }
        } else {
            const char *end;
            long cp = bd_mod_utf8_decode(ptr, &end);

            if (cp < 0) {
                parse_error(p, "invalid UTF-8 sequence in string");
                return NULL;
            }
            ptr = end;
            bd_mod_utf8_append(out, cp);
        }
    }

    JsonNode *node = json_node_new(JSON_NODE_VALUE);
    json_node_set_string(node, out->str);
    return node;
}

static JsonNode *parse_number(Parser *p, const BdJsonToken *t)
{
    const char *str = token_text(p, t);
    JsonNode *node = json_node_new(JSON_NODE_VALUE);

    if (t->type == BD_JSON_INTEGER) {
        char *end;
        gint64 v;

        errno = 0;
        v = g_ascii_strtoll(str, &end, 10);
        if (errno == 0 && *end == '\0') {
            json_node_set_int(node, v);
            return node;
        }
        /* Above int64, QEMU keeps what fits in uint64 exactly. */
        if (str[0] != '-') {
            guint64 u;

            errno = 0;
            u = g_ascii_strtoull(str, &end, 10);
            if (errno == 0 && *end == '\0') {
                json_node_unref(node);
                return bd_json_node_new_uint64(u);
            }
        }
        /* larger numbers become doubles, as in QEMU */
    }
    json_node_set_double(node, g_ascii_strtod(str, NULL));
    return node;
}

static JsonNode *parse_keyword(Parser *p, const BdJsonToken *t)
{
    const char *word = token_text(p, t);
    JsonNode *node;

    if (strcmp(word, "null") == 0) {
        return json_node_new(JSON_NODE_NULL);
    }
    if (strcmp(word, "true") == 0 || strcmp(word, "false") == 0) {
        node = json_node_new(JSON_NODE_VALUE);
        json_node_set_boolean(node, word[0] == 't');
        return node;
    }
    parse_error(p, "invalid keyword '%s'", word);
    return NULL;
}

static bool parse_pair(Parser *p, JsonObject *obj)
{
    const BdJsonToken *t;

    if (!parser_peek(p)) {
        parse_error(p, "premature EOI");
        return false;
    }
    g_autoptr(JsonNode) key = parse_value(p);
    if (!key || json_node_get_value_type(key) != G_TYPE_STRING) {
        parse_error(p, "key is not a string in object");
        return false;
    }
    t = parser_pop(p);
    if (!t) {
        parse_error(p, "premature EOI");
        return false;
    }
    if (t->type != BD_JSON_COLON) {
        parse_error(p, "missing : in object pair");
        return false;
    }
    JsonNode *value = parse_value(p);
    if (!value) {
        parse_error(p, "Missing value in dict");
        return false;
    }
    const char *name = json_node_get_string(key);
    if (json_object_has_member(obj, name)) {
        json_node_unref(value);
        parse_error(p, "duplicate key");
        return false;
    }
    json_object_set_member(obj, name, value);
    return true;
}

static JsonNode *parse_object(Parser *p)
{
    g_autoptr(JsonObject) obj = json_object_new();
    const BdJsonToken *t;

    parser_pop(p);              /* the '{' */
    t = parser_peek(p);
    if (!t) {
        parse_error(p, "premature EOI");
        return NULL;
    }
    if (t->type == BD_JSON_RCURLY) {
        parser_pop(p);
    } else {
        if (!parse_pair(p, obj)) {
            return NULL;
        }
        for (;;) {
            t = parser_pop(p);
            if (!t) {
                parse_error(p, "premature EOI");
                return NULL;
            }
            if (t->type == BD_JSON_RCURLY) {
                break;
            }
            if (t->type != BD_JSON_COMMA) {
                parse_error(p, "expected separator in dict");
                return NULL;
            }
            if (!parse_pair(p, obj)) {
                return NULL;
            }
        }
    }
    JsonNode *node = json_node_new(JSON_NODE_OBJECT);
    json_node_set_object(node, obj);
    return node;
}

static JsonNode *parse_array(Parser *p)
{
    g_autoptr(JsonArray) arr = json_array_new();
    const BdJsonToken *t;
    JsonNode *v;

    parser_pop(p);              /* the '[' */
    t = parser_peek(p);
    if (!t) {
        parse_error(p, "premature EOI");
        return NULL;
    }
    if (t->type == BD_JSON_RSQUARE) {
        parser_pop(p);
    } else {
        v = parse_value(p);
        if (!v) {
            parse_error(p, "expecting value");
            return NULL;
        }
        json_array_add_element(arr, v);
        for (;;) {
            t = parser_pop(p);
            if (!t) {
                parse_error(p, "premature EOI");
                return NULL;
            }
            if (t->type == BD_JSON_RSQUARE) {
                break;
            }
            if (t->type != BD_JSON_COMMA) {
                parse_error(p, "expected separator in list");
                return NULL;
            }
            v = parse_value(p);
            if (!v) {
                parse_error(p, "expecting value");
                return NULL;
            }
            json_array_add_element(arr, v);
        }
    }
    JsonNode *node = json_node_new(JSON_NODE_ARRAY);
    json_node_set_array(node, arr);
    return node;
}

static JsonNode *parse_value(Parser *p)
{
    const BdJsonToken *t = parser_peek(p);

    if (!t) {
        parse_error(p, "premature EOI");
        return NULL;
    }
    switch (t->type) {
    case BD_JSON_LCURLY:
        return parse_object(p);
    case BD_JSON_LSQUARE:
        return parse_array(p);
    case BD_JSON_STRING:
        parser_pop(p);
        return parse_string(p, t);
    case BD_JSON_INTEGER:
    case BD_JSON_FLOAT:
        parser_pop(p);
        return parse_number(p, t);
    case BD_JSON_KEYWORD:
        parser_pop(p);
        return parse_keyword(p, t);
    default:
        parse_error(p, "expecting value");
        return NULL;
    }
}

JsonNode *bd_json_parser_parse(const BdJsonToken *tokens, guint n,
                               const char *text, GError **errp)
{
    Parser p = { .tokens = tokens, .n = n, .text = text };
    JsonNode *value = parse_value(&p);

    if (value && p.pos != n) {
        /* a balanced sequence holds one value; be safe anyway */
        g_clear_pointer(&value, json_node_unref);
        parse_error(&p, "expecting value");
    }
    if (value) {
        g_clear_error(&p.err);
        return value;
    }
    g_propagate_error(errp, p.err);
    return NULL;
}
