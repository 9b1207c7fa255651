/*
 * The JSON streamer and QMP's front end (see json-stream.h): tokens are
 * queued until they form a value, which is parsed and handed on.
 */
#include <string.h>

#include <blockd/error.h>

#include "json/json-int.h"
#include "json/json-stream.h"

struct BdJsonStream {
    BdJsonStreamEmit emit;
    void *opaque;
    BdJsonLexer lexer;

    /* the tokens of the value being collected */
    GArray *tokens;             /* of BdJsonToken */
    GString *text;              /* their text, each followed by NUL */
    size_t token_size;          /* sum of token lengths */
    int brace_count;
    int bracket_count;
};

/* Hand on @value or @err and start collecting the next value. */
static void stream_emit(BdJsonStream *s, JsonNode *value, GError *err)
{
    g_array_set_size(s->tokens, 0);
    g_string_truncate(s->text, 0);
    s->token_size = 0;
    s->brace_count = 0;
    s->bracket_count = 0;
    s->emit(s->opaque, value, err);
}

static void G_GNUC_PRINTF(2, 3) stream_error(BdJsonStream *s,
                                             const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    GError *err = g_error_new_valist(BD_ERROR, BD_ERROR_GENERIC, fmt, ap);
    va_end(ap);
    stream_emit(s, NULL, err);
}

static void stream_parse_pending(BdJsonStream *s)
{
    GError *err = NULL;
    JsonNode *value = bd_json_parser_parse((BdJsonToken *)s->tokens->data,
                                           s->tokens->len, s->text->str,
                                           &err);

    stream_emit(s, value, err);
}

static void stream_token(void *opaque, BdJsonTokenType type,
                         const char *text, size_t len)
{
    BdJsonStream *s = opaque;
    BdJsonToken t;

    switch (type) {
    case BD_JSON_LCURLY:
        s->brace_count++;
        break;
    case BD_JSON_RCURLY:
        s->brace_count--;
        break;
    case BD_JSON_LSQUARE:
        s->bracket_count++;
        break;
    case BD_JSON_RSQUARE:
        s->bracket_count--;
        break;
    case BD_JSON_ERROR:
        stream_error(s, "JSON parse error, stray '%s'", text);
        return;
    default:
        break;
    }

    /* the limits that bound what one value may cost us */
    if (s->token_size + len + 1 > BD_JSON_MAX_TOKEN_SIZE) {
        stream_error(s, "JSON token size limit exceeded");
        return;
    }
    if (s->tokens->len + 1 > BD_JSON_MAX_TOKEN_COUNT) {
        stream_error(s, "JSON token count limit exceeded");
        return;
    }
    if (s->brace_count + s->bracket_count > BD_JSON_MAX_NESTING) {
        stream_error(s, "JSON nesting depth limit exceeded");
        return;
    }
    /* an oversized token always failed the size limit above */
    g_assert(type != BD_JSON_OVERSIZED);

    t.type = type;
    t.offset = s->text->len;
    t.len = len;
    g_string_append_len(s->text, text, len);
    g_string_append_c(s->text, '\0');
    g_array_append_val(s->tokens, t);
    s->token_size += len;

    if ((s->brace_count > 0 || s->bracket_count > 0) &&
        s->brace_count >= 0 && s->bracket_count >= 0) {
        return;                 /* the value is not complete yet */
    }
    stream_parse_pending(s);
}

BdJsonStream *bd_json_stream_new(BdJsonStreamEmit emit, void *opaque)
{
    BdJsonStream *s = g_new0(BdJsonStream, 1);

    s->emit = emit;
    s->opaque = opaque;
    bd_json_lexer_init(&s->lexer, stream_token, s);
    s->tokens = g_array_new(false, false, sizeof(BdJsonToken));
    s->text = g_string_new(NULL);
    return s;
}

void bd_json_stream_feed(BdJsonStream *s, const char *buf, size_t len)
{
    bd_json_lexer_feed(&s->lexer, buf, len);
}

void bd_json_stream_flush(BdJsonStream *s)
{
    bd_json_lexer_flush(&s->lexer);
    if (s->tokens->len) {
        stream_parse_pending(s);
    }
}

void bd_json_stream_free(BdJsonStream *s)
{
    if (!s) {
        return;
    }
    bd_json_lexer_destroy(&s->lexer);
    g_array_unref(s->tokens);
    g_string_free(s->text, true);
    g_free(s);
}
