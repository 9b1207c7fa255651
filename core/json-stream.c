/*
 * Incremental JSON message splitting and parsing with QEMU's rules (see
 * json-stream.h for the behaviour this must keep).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <blockd/error.h>

#include "json-stream.h"
#include "mod-utf8.h"

typedef enum TokenType {
    TK_LCURLY,
    TK_RCURLY,
    TK_LSQUARE,
    TK_RSQUARE,
    TK_COLON,
    TK_COMMA,
    TK_INTEGER,
    TK_FLOAT,
    TK_KEYWORD,
    TK_STRING,
} TokenType;

typedef enum LexState {
    LX_START,
    LX_RECOVERY,        /* after an error: skipping to a sync point */
    LX_STRING,          /* inside "..." or '...' (quote in s->quote) */
    LX_STRING_ESC,      /* after a backslash (the parser checks it) */
    LX_ZERO,            /* "0" or "-0": no more digits may follow */
    LX_DIGITS,          /* integer part after a non-zero digit */
    LX_SIGN,            /* after a leading '-' */
    LX_DOT,             /* after '.': a digit must follow */
    LX_FRACTION,
    LX_EXP,             /* after 'e'/'E' */
    LX_EXP_SIGN,        /* after the exponent's sign */
    LX_EXP_DIGITS,
    LX_KEYWORD,         /* [a-z]+ */
} LexState;

typedef struct Token {
    TokenType type;
    size_t offset;      /* into BdJsonStream.text, NUL-terminated there */
    size_t len;
} Token;

struct BdJsonStream {
    BdJsonStreamEmit emit;
    void *opaque;

    /* lexer */
    LexState state;
    char quote;
    GString *token;

    /* splitter: the tokens of the value being collected */
    GArray *tokens;             /* of Token */
    GString *text;              /* their text, each followed by NUL */
    size_t token_size;          /* sum of token lengths */
    int brace_count;
    int bracket_count;
};

/* ---- parser over one complete token sequence ---- */

typedef struct Parser {
    BdJsonStream *s;
    guint pos;
    GError *err;
} Parser;

static const Token *parser_peek(Parser *p)
{
    if (p->pos >= p->s->tokens->len) {
        return NULL;
    }
    return &g_array_index(p->s->tokens, Token, p->pos);
}

static const Token *parser_pop(Parser *p)
{
    const Token *t = parser_peek(p);

    if (t) {
        p->pos++;
    }
    return t;
}

static const char *token_text(Parser *p, const Token *t)
{
    return p->s->text->str + t->offset;
}

/* Only the first error of a value is reported, as QEMU does. */
static void G_GNUC_PRINTF(2, 3) parse_error(Parser *p, const char *fmt, ...)
{
    va_list ap;

    if (p->err) {
        return;
    }
    va_start(ap, fmt);
    g_autofree char *msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    p->err = g_error_new(BD_ERROR, BD_ERROR_GENERIC, "JSON parse error, %s",
                         msg);
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

static JsonNode *parse_string(Parser *p, const Token *t)
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

static JsonNode *parse_number(Parser *p, const Token *t)
{
    const char *str = token_text(p, t);
    JsonNode *node = json_node_new(JSON_NODE_VALUE);

    if (t->type == TK_INTEGER) {
        char *end;
        gint64 v;

        errno = 0;
        v = g_ascii_strtoll(str, &end, 10);
        if (errno == 0 && *end == '\0') {
            json_node_set_int(node, v);
            return node;
        }
        /*
         * Out of int64 range: QEMU keeps unsigned 64-bit values exactly,
         * but a json-glib node has no unsigned integer, so they become
         * doubles like every larger number.
         */
    }
    json_node_set_double(node, g_ascii_strtod(str, NULL));
    return node;
}

static JsonNode *parse_keyword(Parser *p, const Token *t)
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
    const Token *t;

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
    if (t->type != TK_COLON) {
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
    const Token *t;

    parser_pop(p);              /* the '{' */
    t = parser_peek(p);
    if (!t) {
        parse_error(p, "premature EOI");
        return NULL;
    }
    if (t->type == TK_RCURLY) {
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
            if (t->type == TK_RCURLY) {
                break;
            }
            if (t->type != TK_COMMA) {
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
    const Token *t;
    JsonNode *v;

    parser_pop(p);              /* the '[' */
    t = parser_peek(p);
    if (!t) {
        parse_error(p, "premature EOI");
        return NULL;
    }
    if (t->type == TK_RSQUARE) {
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
            if (t->type == TK_RSQUARE) {
                break;
            }
            if (t->type != TK_COMMA) {
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
    const Token *t = parser_peek(p);

    if (!t) {
        parse_error(p, "premature EOI");
        return NULL;
    }
    switch (t->type) {
    case TK_LCURLY:
        return parse_object(p);
    case TK_LSQUARE:
        return parse_array(p);
    case TK_STRING:
        parser_pop(p);
        return parse_string(p, t);
    case TK_INTEGER:
    case TK_FLOAT:
        parser_pop(p);
        return parse_number(p, t);
    case TK_KEYWORD:
        parser_pop(p);
        return parse_keyword(p, t);
    default:
        parse_error(p, "expecting value");
        return NULL;
    }
}

/* ---- splitter ---- */

static void stream_reset_value(BdJsonStream *s)
{
    g_array_set_size(s->tokens, 0);
    g_string_truncate(s->text, 0);
    s->token_size = 0;
    s->brace_count = 0;
    s->bracket_count = 0;
}

static void stream_emit_error(BdJsonStream *s, GError *err)
{
    stream_reset_value(s);
    s->emit(s->opaque, NULL, err);
}

static void stream_parse_pending(BdJsonStream *s)
{
    Parser p = { .s = s };
    JsonNode *value = parse_value(&p);

    if (value && p.pos != s->tokens->len) {
        /* cannot happen for a balanced sequence; be safe anyway */
        json_node_unref(value);
        value = NULL;
        parse_error(&p, "expecting value");
    }
    stream_reset_value(s);
    if (value) {
        g_clear_error(&p.err);
    }
    s->emit(s->opaque, value, value ? NULL : p.err);
}

static void stream_token(BdJsonStream *s, TokenType type)
{
    GString *tok = s->token;
    Token t;

    switch (type) {
    case TK_LCURLY:
        s->brace_count++;
        break;
    case TK_RCURLY:
        s->brace_count--;
        break;
    case TK_LSQUARE:
        s->bracket_count++;
        break;
    case TK_RSQUARE:
        s->bracket_count--;
        break;
    default:
        break;
    }

    /* the limits that bound what one value may cost us */
    if (s->token_size + tok->len + 1 > BD_JSON_MAX_TOKEN_SIZE) {
        stream_emit_error(s, g_error_new_literal(BD_ERROR, BD_ERROR_GENERIC,
                          "JSON token size limit exceeded"));
        return;
    }
    if (s->tokens->len + 1 > BD_JSON_MAX_TOKEN_COUNT) {
        stream_emit_error(s, g_error_new_literal(BD_ERROR, BD_ERROR_GENERIC,
                          "JSON token count limit exceeded"));
        return;
    }
    if (s->brace_count + s->bracket_count > BD_JSON_MAX_NESTING) {
        stream_emit_error(s, g_error_new_literal(BD_ERROR, BD_ERROR_GENERIC,
                          "JSON nesting depth limit exceeded"));
        return;
    }

    t.type = type;
    t.offset = s->text->len;
    t.len = tok->len;
    g_string_append_len(s->text, tok->str, tok->len);
    g_string_append_c(s->text, '\0');
    g_array_append_val(s->tokens, t);
    s->token_size += tok->len;

    if ((s->brace_count > 0 || s->bracket_count > 0) &&
        s->brace_count >= 0 && s->bracket_count >= 0) {
        return;                 /* the value is not complete yet */
    }
    stream_parse_pending(s);
}

/* The token text so far is not JSON: report it and resynchronise. */
static void lex_error(BdJsonStream *s)
{
    GError *err = g_error_new(BD_ERROR, BD_ERROR_GENERIC,
                              "JSON parse error, stray '%s'", s->token->str);

    g_string_truncate(s->token, 0);
    s->state = LX_RECOVERY;
    stream_emit_error(s, err);
}

static void lex_finish(BdJsonStream *s, TokenType type)
{
    stream_token(s, type);
    g_string_truncate(s->token, 0);
    s->state = LX_START;
}

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

/*
 * Returns whether @c was consumed; when it only ended the token before
 * it, the caller feeds it again in the new state.
 */
static bool lex_char(BdJsonStream *s, unsigned char c)
{
    switch (s->state) {
    case LX_START:
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
            return true;
        }
        g_string_append_c(s->token, (char)c);
        switch (c) {
        case '{':
            lex_finish(s, TK_LCURLY);
            return true;
        case '}':
            lex_finish(s, TK_RCURLY);
            return true;
        case '[':
            lex_finish(s, TK_LSQUARE);
            return true;
        case ']':
            lex_finish(s, TK_RSQUARE);
            return true;
        case ':':
            lex_finish(s, TK_COLON);
            return true;
        case ',':
            lex_finish(s, TK_COMMA);
            return true;
        case '"':
        case '\'':
            s->quote = (char)c;
            s->state = LX_STRING;
            return true;
        case '0':
            s->state = LX_ZERO;
            return true;
        case '-':
            s->state = LX_SIGN;
            return true;
        default:
            if (c >= '1' && c <= '9') {
                s->state = LX_DIGITS;
            } else if (c >= 'a' && c <= 'z') {
                s->state = LX_KEYWORD;
            } else {
                lex_error(s);
            }
            return true;
        }

    case LX_RECOVERY:
        if (strchr("{}[]:,", c) && c != '\0') {
            s->state = LX_START;
            return false;
        }
        if ((c < 0x20 && c != '\t') || c >= 0xFE) {
            s->state = LX_START;
            return false;
        }
        return true;

    case LX_STRING:
        g_string_append_c(s->token, (char)c);
        if (c == (unsigned char)s->quote) {
            lex_finish(s, TK_STRING);
        } else if (c == '\\') {
            s->state = LX_STRING_ESC;
        } else if (c < 0x20 || c >= 0xFE) {
            lex_error(s);
        }
        return true;

    case LX_STRING_ESC:
        /* any printable byte; the parser rejects unknown escapes */
        g_string_append_c(s->token, (char)c);
        if (c >= 0x20 && c < 0xFE) {
            s->state = LX_STRING;
        } else {
            lex_error(s);
        }
        return true;

    case LX_SIGN:
        g_string_append_c(s->token, (char)c);
        if (c == '0') {
            s->state = LX_ZERO;
        } else if (c >= '1' && c <= '9') {
            s->state = LX_DIGITS;
        } else {
            lex_error(s);
        }
        return true;

    case LX_ZERO:
    case LX_DIGITS:
        if (is_digit(c)) {
            g_string_append_c(s->token, (char)c);
            if (s->state == LX_ZERO) {
                lex_error(s);   /* no leading zeros */
            }
            return true;
        }
        if (c == '.') {
            g_string_append_c(s->token, (char)c);
            s->state = LX_DOT;
            return true;
        }
        if (c == 'e' || c == 'E') {
            g_string_append_c(s->token, (char)c);
            s->state = LX_EXP;
            return true;
        }
        lex_finish(s, TK_INTEGER);
        return false;

    case LX_DOT:
        g_string_append_c(s->token, (char)c);
        if (is_digit(c)) {
            s->state = LX_FRACTION;
        } else {
            lex_error(s);
        }
        return true;

    case LX_FRACTION:
        if (is_digit(c)) {
            g_string_append_c(s->token, (char)c);
            return true;
        }
        if (c == 'e' || c == 'E') {
            g_string_append_c(s->token, (char)c);
            s->state = LX_EXP;
            return true;
        }
        lex_finish(s, TK_FLOAT);
        return false;

    case LX_EXP:
        g_string_append_c(s->token, (char)c);
        if (c == '+' || c == '-') {
            s->state = LX_EXP_SIGN;
        } else if (is_digit(c)) {
            s->state = LX_EXP_DIGITS;
        } else {
            lex_error(s);
        }
        return true;

    case LX_EXP_SIGN:
        g_string_append_c(s->token, (char)c);
        if (is_digit(c)) {
            s->state = LX_EXP_DIGITS;
        } else {
            lex_error(s);
        }
        return true;

    case LX_EXP_DIGITS:
        if (is_digit(c)) {
            g_string_append_c(s->token, (char)c);
            return true;
        }
        lex_finish(s, TK_FLOAT);
        return false;

    case LX_KEYWORD:
        if (c >= 'a' && c <= 'z') {
            g_string_append_c(s->token, (char)c);
            return true;
        }
        lex_finish(s, TK_KEYWORD);
        return false;
    }
    g_assert_not_reached();
}

BdJsonStream *bd_json_stream_new(BdJsonStreamEmit emit, void *opaque)
{
    BdJsonStream *s = g_new0(BdJsonStream, 1);

    s->emit = emit;
    s->opaque = opaque;
    s->state = LX_START;
    s->token = g_string_new(NULL);
    s->tokens = g_array_new(false, false, sizeof(Token));
    s->text = g_string_new(NULL);
    return s;
}

void bd_json_stream_feed(BdJsonStream *s, const char *buf, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        while (!lex_char(s, (unsigned char)buf[i])) {
            /* the character ended a token; feed it again */
        }
        if (s->token->len > BD_JSON_MAX_TOKEN_SIZE) {
            /* one endless token: drop it rather than grow without end */
            g_string_truncate(s->token, 0);
            s->state = LX_START;
            stream_emit_error(s, g_error_new_literal(BD_ERROR,
                              BD_ERROR_GENERIC,
                              "JSON token size limit exceeded"));
        }
    }
}

void bd_json_stream_flush(BdJsonStream *s)
{
    switch (s->state) {
    case LX_START:
    case LX_RECOVERY:
        break;
    case LX_ZERO:
    case LX_DIGITS:
        lex_finish(s, TK_INTEGER);
        break;
    case LX_FRACTION:
    case LX_EXP_DIGITS:
        lex_finish(s, TK_FLOAT);
        break;
    case LX_KEYWORD:
        lex_finish(s, TK_KEYWORD);
        break;
    default:
        lex_error(s);
        break;
    }
    s->state = LX_START;
    g_string_truncate(s->token, 0);
    if (s->tokens->len) {
        stream_parse_pending(s);
    }
}

void bd_json_stream_free(BdJsonStream *s)
{
    if (!s) {
        return;
    }
    g_string_free(s->token, true);
    g_array_unref(s->tokens);
    g_string_free(s->text, true);
    g_free(s);
}

typedef struct ParseOne {
    JsonNode *value;
    GError *err;
    unsigned count;
} ParseOne;

static void parse_one_emit(void *opaque, JsonNode *value, GError *err)
{
    ParseOne *one = opaque;

    if (++one->count == 1) {
        one->value = value;
        one->err = err;
        return;
    }
    if (value) {
        json_node_unref(value);
    }
    if (err) {
        g_error_free(err);
    }
}

JsonNode *bd_json_parse(const char *text, GError **errp)
{
    ParseOne one = { 0 };
    BdJsonStream *s = bd_json_stream_new(parse_one_emit, &one);

    bd_json_stream_feed(s, text, strlen(text));
    bd_json_stream_flush(s);
    bd_json_stream_free(s);

    if (one.count > 1) {
        g_clear_pointer(&one.value, json_node_unref);
        g_clear_error(&one.err);
        g_set_error_literal(errp, BD_ERROR, BD_ERROR_GENERIC,
                            "Expecting a single JSON value");
        return NULL;
    }
    if (one.count == 0) {
        g_set_error_literal(errp, BD_ERROR, BD_ERROR_GENERIC,
                            "Expecting a JSON value");
        return NULL;
    }
    if (one.err) {
        g_propagate_error(errp, one.err);
    }
    return one.value;
}
