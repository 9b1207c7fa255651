/*
 * A JSON reader that accepts, refuses and reports like QEMU's.
 *
 * QEMU reads JSON in three layers, and where an error is reported depends
 * on all three, so we keep the same layering:
 * - a lexer cuts the text into tokens; a character no token may hold
 *   ends the token with an error ("stray '...'", the token text so far
 *   including that character);
 * - a streamer queues tokens and hands the queue to the parser as soon
 *   as the brackets seen so far balance (or close more than they open),
 *   and at the end of the text; a lexer error is reported at once, even
 *   when earlier queued tokens hold a grammar error;
 * - a recursive-descent parser builds the value from the queue; the first
 *   error it meets is the one reported.
 * The first thing the streamer hands over (a value or an error) decides;
 * anything after a value is "Expecting at most one JSON value".
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <blockd/error.h>

#include "qemu-json.h"

typedef enum TokenType {
    TOKEN_LCURLY,
    TOKEN_RCURLY,
    TOKEN_LSQUARE,
    TOKEN_RSQUARE,
    TOKEN_COMMA,
    TOKEN_COLON,
    TOKEN_STRING,
    TOKEN_INTEGER,
    TOKEN_FLOAT,
    TOKEN_KEYWORD,
} TokenType;

typedef struct Token {
    TokenType type;
    char *text;
} Token;

static void token_free(gpointer p)
{
    Token *t = p;

    g_free(t->text);
    g_free(t);
}

/* ---- lexer ---- */

typedef enum LexResult {
    LEX_TOKEN,
    LEX_END,
    LEX_ERROR,
} LexResult;

static bool in_string_range(unsigned char c)
{
    return c >= 0x20 && c <= 0xfd;
}

/* Length of the number at @p, or 0 with *@error_len set on error. */
static size_t lex_number(const char *p, bool *is_float, size_t *error_len)
{
    size_t i = 0;

    *is_float = false;
    *error_len = 0;
    if (p[i] == '-') {
        i++;
    }
    if (p[i] == '0') {
        i++;
        if (g_ascii_isdigit(p[i])) {
            *error_len = i + 1;
            return 0;
        }
    } else if (p[i] >= '1' && p[i] <= '9') {
        while (g_ascii_isdigit(p[i])) {
            i++;
        }
    } else {
        *error_len = p[i] ? i + 1 : i;
        return 0;
    }
    if (p[i] == '.') {
        i++;
        *is_float = true;
        if (!g_ascii_isdigit(p[i])) {
            *error_len = p[i] ? i + 1 : i;
            return 0;
        }
        while (g_ascii_isdigit(p[i])) {
            i++;
        }
    }
    if (p[i] == 'e' || p[i] == 'E') {
        i++;
        *is_float = true;
        if (p[i] == '+' || p[i] == '-') {
            i++;
        }
        if (!g_ascii_isdigit(p[i])) {
            *error_len = p[i] ? i + 1 : i;
            return 0;
        }
        while (g_ascii_isdigit(p[i])) {
            i++;
        }
    }
    /* Whatever follows ends the number and is lexed on its own */
    return i;
}

/* Length of the quoted string at @p, or 0 with *@error_len set. */
static size_t lex_string(const char *p, size_t *error_len)
{
    char quote = p[0];
    size_t i = 1;

    for (;;) {
        unsigned char c = p[i];

        if (c == quote) {
            return i + 1;
        }
        if (c == '\\') {
            i++;
            c = p[i];
        }
        if (!in_string_range(c)) {
            /* the end of the text is not part of the token */
            *error_len = c ? i + 1 : i;
            return 0;
        }
        i++;
    }
}

/*
 * Read the next token at *@pp, skipping whitespace.  On LEX_TOKEN fill
 * @tok; on LEX_ERROR set *@error_text to the offending token text.
 */
static LexResult lex_next(const char **pp, Token *tok, char **error_text)
{
    const char *p = *pp;
    size_t len = 0, error_len = 0;
    bool is_float;

    while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') {
        p++;
    }
    switch (*p) {
    case '\0':
        *pp = p;
        return LEX_END;
    case '{':
        tok->type = TOKEN_LCURLY;
        len = 1;
        break;
    case '}':
        tok->type = TOKEN_RCURLY;
        len = 1;
        break;
    case '[':
        tok->type = TOKEN_LSQUARE;
        len = 1;
        break;
    case ']':
        tok->type = TOKEN_RSQUARE;
        len = 1;
        break;
    case ',':
        tok->type = TOKEN_COMMA;
        len = 1;
        break;
    case ':':
        tok->type = TOKEN_COLON;
        len = 1;
        break;
    case '"':
    case '\'':
        tok->type = TOKEN_STRING;
        len = lex_string(p, &error_len);
        break;
    case '-':
    case '0' ... '9':
        len = lex_number(p, &is_float, &error_len);
        tok->type = is_float ? TOKEN_FLOAT : TOKEN_INTEGER;
        break;
    case 'a' ... 'z':
        tok->type = TOKEN_KEYWORD;
        while (p[len] >= 'a' && p[len] <= 'z') {
            len++;
        }
        break;
    default:
        error_len = 1;
        break;
    }

    if (error_len) {
        *error_text = g_strndup(p, error_len);
        *pp = p + error_len;
        return LEX_ERROR;
    }
    tok->text = g_strndup(p, len);
    *pp = p + len;
    return LEX_TOKEN;
}

/* ---- parser ---- */

typedef struct Parser {
    GPtrArray *tokens;      /* of Token * */
    guint pos;
    GError *err;            /* the first error only */
} Parser;

static void parse_error(Parser *ps, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

static void parse_error(Parser *ps, const char *fmt, ...)
{
    va_list ap;
    g_autofree char *msg = NULL;

    if (ps->err) {
        return;
    }
    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    ps->err = g_error_new(BD_ERROR, BD_ERROR_GENERIC, "JSON parse error, %s",
                          msg);
}

static Token *peek(Parser *ps)
{
    return ps->pos < ps->tokens->len ? ps->tokens->pdata[ps->pos] : NULL;
}

static Token *pop(Parser *ps)
{
    Token *t = peek(ps);

    if (t) {
        ps->pos++;
    }
    return t;
}

static JsonNode *parse_value(Parser *ps);

static int hex4(const char *s)
{
    int v = 0;
    int i;

    for (i = 0; i < 4; i++) {
        int d = g_ascii_xdigit_value(s[i]);

        if (d < 0) {
            return -1;
        }
        v = v * 16 + d;
    }
    return v;
}

/* Which code points QEMU lets into strings, escaped or not. */
static bool valid_codepoint(gint64 cp)
{
    if (cp < 0 || cp > 0x10ffff) {
        return false;
    }
    if ((cp & ~0x7ff) == 0xd800) {
        return false;           /* surrogates */
    }
    if ((cp >= 0xfdd0 && cp <= 0xfdef) || (cp & 0xfffe) == 0xfffe) {
        return false;           /* noncharacters */
    }
    return true;
}

/*
 * Modified UTF-8: like UTF-8, but U+0000 is the two bytes C0 80 so that
 * strings never hold a NUL byte.
 */
static void append_mod_utf8(GString *s, gunichar cp)
{
    if (cp == 0) {
        g_string_append_len(s, "\xc0\x80", 2);
    } else {
        g_string_append_unichar(s, cp);
    }
}

/*
 * Decode one modified UTF-8 character at @p (valid code point, shortest
 * form except C0 80); return its length in bytes, or 0 if invalid.
 */
static size_t mod_utf8_len(const unsigned char *p)
{
    static const gint64 min_cp[] = { 0x80, 0x800, 0x10000, 0x200000,
                                     0x4000000 };
    unsigned char c = p[0];
    size_t len = 0, i;
    unsigned mask;
    gint64 cp;

    if (c < 0x80) {
        return 1;
    }
    if (c >= 0xfe || !(c & 0x40)) {
        return 0;               /* impossible or continuation byte */
    }
    for (mask = 0x80; c & mask; mask >>= 1) {
        len++;
    }
    cp = c & (mask - 1);
    for (i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            return 0;
        }
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    if (!valid_codepoint(cp)) {
        return 0;
    }
    if (cp < min_cp[len - 2] && !(cp == 0 && len == 2)) {
        return 0;               /* overlong */
    }
    return len;
}

static JsonNode *parse_string(Parser *ps, const Token *tok)
{
    const char *p = tok->text;
    char quote = *p++;
    g_autoptr(GString) s = g_string_new(NULL);
    JsonNode *node;

    while (*p != quote) {
        const char *beg = p;
        size_t len;
        int cp, low;

        if (*p != '\\') {
            len = mod_utf8_len((const unsigned char *)p);
            if (!len) {
                parse_error(ps, "invalid UTF-8 sequence in string");
                return NULL;
            }
            g_string_append_len(s, p, len);
            p += len;
            continue;
        }
        p++;
        switch (*p++) {
        case '"':
            g_string_append_c(s, '"');
            break;
        case '\'':
            g_string_append_c(s, '\'');
            break;
        case '\\':
            g_string_append_c(s, '\\');
            break;
        case '/':
            g_string_append_c(s, '/');
            break;
        case 'b':
            g_string_append_c(s, '\b');
            break;
        case 'f':
            g_string_append_c(s, '\f');
            break;
        case 'n':
            g_string_append_c(s, '\n');
            break;
        case 'r':
            g_string_append_c(s, '\r');
            break;
        case 't':
            g_string_append_c(s, '\t');
            break;
        case 'u':
            cp = hex4(p);
            /* hex4() stops at the token's end: it is never hex */
            p += cp < 0 ? strnlen(p, 4) : 4;
            if (cp >= 0xd800 && cp <= 0xdbff && p[0] == '\\' && p[1] == 'u') {
                low = hex4(p + 2);
                if (low >= 0xdc00 && low <= 0xdfff) {
                    cp = 0x10000 + ((cp & 0x3ff) << 10) + (low & 0x3ff);
                    p += 6;
                } else {
                    cp = -1;
                }
            }
            if (!valid_codepoint(cp)) {
                parse_error(ps, "%.*s is not a valid Unicode character",
                            (int)(p - beg), beg);
                return NULL;
            }
            append_mod_utf8(s, cp);
            break;
        default:
            parse_error(ps, "invalid escape sequence in string");
            return NULL;
        }
    }
    node = json_node_new(JSON_NODE_VALUE);
    json_node_set_string(node, s->str);
    return node;
}

static JsonNode *parse_number(const Token *tok)
{
    JsonNode *node = json_node_new(JSON_NODE_VALUE);
    gint64 v;
    char *end;

    if (tok->type == TOKEN_INTEGER) {
        errno = 0;
        v = g_ascii_strtoll(tok->text, &end, 10);
        if (errno == 0 && *end == '\0') {
            json_node_set_int(node, v);
            return node;
        }
    }
    json_node_set_double(node, g_ascii_strtod(tok->text, NULL));
    return node;
}

static JsonNode *parse_keyword(Parser *ps, const Token *tok)
{
    JsonNode *node;

    if (strcmp(tok->text, "true") == 0 || strcmp(tok->text, "false") == 0) {
        node = json_node_new(JSON_NODE_VALUE);
        json_node_set_boolean(node, tok->text[0] == 't');
        return node;
    }
    if (strcmp(tok->text, "null") == 0) {
        return json_node_new(JSON_NODE_NULL);
    }
    parse_error(ps, "invalid keyword '%s'", tok->text);
    return NULL;
}

/* Parse "key: value" into @obj; false on error. */
static bool parse_pair(Parser *ps, JsonObject *obj)
{
    JsonNode *key, *value;
    Token *tok;
    bool ok = false;

    if (!peek(ps)) {
        parse_error(ps, "premature EOI");
        return false;
    }
    key = parse_value(ps);
    if (!key || !JSON_NODE_HOLDS_VALUE(key) ||
        json_node_get_value_type(key) != G_TYPE_STRING) {
        parse_error(ps, "key is not a string in object");
        goto out;
    }
    tok = pop(ps);
    if (!tok) {
        parse_error(ps, "premature EOI");
        goto out;
    }
    if (tok->type != TOKEN_COLON) {
        parse_error(ps, "missing : in object pair");
        goto out;
    }
    value = parse_value(ps);
    if (!value) {
        parse_error(ps, "Missing value in dict");
        goto out;
    }
    if (json_object_has_member(obj, json_node_get_string(key))) {
        json_node_unref(value);
        parse_error(ps, "duplicate key");
        goto out;
    }
    json_object_set_member(obj, json_node_get_string(key), value);
    ok = true;
out:
    if (key) {
        json_node_unref(key);
    }
    return ok;
}

static JsonNode *parse_object(Parser *ps)
{
    JsonObject *obj = json_object_new();
    JsonNode *node;
    Token *tok;

    pop(ps);                    /* '{' */
    tok = peek(ps);
    if (!tok) {
        parse_error(ps, "premature EOI");
        goto fail;
    }
    if (tok->type == TOKEN_RCURLY) {
        pop(ps);
    } else {
        for (;;) {
            if (!parse_pair(ps, obj)) {
                goto fail;
            }
            tok = pop(ps);
            if (!tok) {
                parse_error(ps, "premature EOI");
                goto fail;
            }
            if (tok->type == TOKEN_RCURLY) {
                break;
            }
            if (tok->type != TOKEN_COMMA) {
                parse_error(ps, "expected separator in dict");
                goto fail;
            }
        }
    }
    node = json_node_new(JSON_NODE_OBJECT);
    json_node_take_object(node, obj);
    return node;

fail:
    json_object_unref(obj);
    return NULL;
}

static JsonNode *parse_array(Parser *ps)
{
    JsonArray *array = json_array_new();
    JsonNode *node;
    Token *tok;

    pop(ps);                    /* '[' */
    tok = peek(ps);
    if (!tok) {
        parse_error(ps, "premature EOI");
        goto fail;
    }
    if (tok->type == TOKEN_RSQUARE) {
        pop(ps);
    } else {
        for (;;) {
            JsonNode *elt = parse_value(ps);

            if (!elt) {
                parse_error(ps, "expecting value");
                goto fail;
            }
            json_array_add_element(array, elt);
            tok = pop(ps);
            if (!tok) {
                parse_error(ps, "premature EOI");
                goto fail;
            }
            if (tok->type == TOKEN_RSQUARE) {
                break;
            }
            if (tok->type != TOKEN_COMMA) {
                parse_error(ps, "expected separator in list");
                goto fail;
            }
        }
    }
    node = json_node_new(JSON_NODE_ARRAY);
    json_node_take_array(node, array);
    return node;

fail:
    json_array_unref(array);
    return NULL;
}

static JsonNode *parse_value(Parser *ps)
{
    Token *tok = peek(ps);

    if (!tok) {
        parse_error(ps, "premature EOI");
        return NULL;
    }
    switch (tok->type) {
    case TOKEN_LCURLY:
        return parse_object(ps);
    case TOKEN_LSQUARE:
        return parse_array(ps);
    case TOKEN_STRING:
        pop(ps);
        return parse_string(ps, tok);
    case TOKEN_INTEGER:
    case TOKEN_FLOAT:
        pop(ps);
        return parse_number(tok);
    case TOKEN_KEYWORD:
        pop(ps);
        return parse_keyword(ps, tok);
    default:
        parse_error(ps, "expecting value");
        return NULL;
    }
}

/* ---- streamer ---- */

/* Run the parser over the queued tokens: either a node or an error. */
static JsonNode *parse_queue(GPtrArray *queue, GError **errp)
{
    Parser ps = { .tokens = queue };
    JsonNode *node = parse_value(&ps);

    if (ps.err) {
        if (node) {
            json_node_unref(node);
        }
        g_propagate_error(errp, ps.err);
        return NULL;
    }
    return node;
}

/*
 * Read tokens until the streamer would hand over its first message;
 * return that message's value, or NULL with @errp set.  *@pp is left
 * after the message.
 */
static JsonNode *first_message(const char **pp, GError **errp)
{
    g_autoptr(GPtrArray) queue = g_ptr_array_new_with_free_func(token_free);
    int braces = 0, brackets = 0;

    for (;;) {
        Token tok;
        char *error_text;
        Token *t;

        switch (lex_next(pp, &tok, &error_text)) {
        case LEX_END:
            if (!queue->len) {
                g_set_error_literal(errp, BD_ERROR, BD_ERROR_GENERIC,
                                    "Expecting a JSON value");
                return NULL;
            }
            return parse_queue(queue, errp);
        case LEX_ERROR:
            g_set_error(errp, BD_ERROR, BD_ERROR_GENERIC,
                        "JSON parse error, stray '%s'", error_text);
            g_free(error_text);
            return NULL;
        case LEX_TOKEN:
            break;
        }

        switch (tok.type) {
        case TOKEN_LCURLY:
            braces++;
            break;
        case TOKEN_RCURLY:
            braces--;
            break;
        case TOKEN_LSQUARE:
            brackets++;
            break;
        case TOKEN_RSQUARE:
            brackets--;
            break;
        default:
            break;
        }
        if (braces + brackets > BD_QEMU_JSON_MAX_NESTING) {
            g_free(tok.text);
            g_set_error_literal(errp, BD_ERROR, BD_ERROR_GENERIC,
                                "JSON nesting depth limit exceeded");
            return NULL;
        }
        t = g_new(Token, 1);
        *t = tok;
        g_ptr_array_add(queue, t);
        if ((braces > 0 || brackets > 0) && braces >= 0 && brackets >= 0) {
            continue;
        }
        return parse_queue(queue, errp);
    }
}

JsonNode *bd_qemu_json_parse(const char *text, GError **errp)
{
    const char *p = text;
    JsonNode *node = first_message(&p, errp);

    if (!node) {
        return NULL;
    }
    /* Whatever follows would be a second message, even a stray byte */
    p += strspn(p, " \t\r\n");
    if (*p) {
        json_node_unref(node);
        g_set_error_literal(errp, BD_ERROR, BD_ERROR_GENERIC,
                            "Expecting at most one JSON value");
        return NULL;
    }
    return node;
}
