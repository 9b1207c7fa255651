/*
 * The JSON lexer (see json-int.h): QEMU's token grammar, fed a byte at a
 * time so that a token may arrive in pieces.  Besides standard JSON it
 * takes single-quoted strings; escapes are checked by the parser, so any
 * printable byte may follow a backslash here.  After an error it skips
 * input up to a structural character ({ } [ ] : ,), a control character
 * other than tab, or a byte 0xFE/0xFF, where a peer can resynchronise.
 */
#include <string.h>

#include "json/json-int.h"

typedef enum LexState {
    LX_START,
    LX_RECOVERY,        /* after an error: skipping to a sync point */
    LX_STRING,          /* inside "..." or '...' (quote in lx->quote) */
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

/* The token text so far is not JSON: report it and resynchronise. */
static void lex_error(BdJsonLexer *lx)
{
    lx->token_fn(lx->opaque, BD_JSON_ERROR, lx->token->str, lx->token->len);
    g_string_truncate(lx->token, 0);
    lx->state = LX_RECOVERY;
}

static void lex_finish(BdJsonLexer *lx, BdJsonTokenType type)
{
    lx->token_fn(lx->opaque, type, lx->token->str, lx->token->len);
    g_string_truncate(lx->token, 0);
    lx->state = LX_START;
}

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

/*
 * Returns whether @c was consumed; when it only ended the token before
 * it, the caller feeds it again in the new state.
 */
static bool lex_char(BdJsonLexer *lx, unsigned char c)
{
    switch (lx->state) {
    case LX_START:
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
            return true;
        }
        g_string_append_c(lx->token, (char)c);
        switch (c) {
        case '{':
            lex_finish(lx, BD_JSON_LCURLY);
            return true;
        case '}':
            lex_finish(lx, BD_JSON_RCURLY);
            return true;
        case '[':
            lex_finish(lx, BD_JSON_LSQUARE);
            return true;
        case ']':
            lex_finish(lx, BD_JSON_RSQUARE);
            return true;
        case ':':
            lex_finish(lx, BD_JSON_COLON);
            return true;
        case ',':
            lex_finish(lx, BD_JSON_COMMA);
            return true;
        case '"':
        case '\'':
            lx->quote = (char)c;
            lx->state = LX_STRING;
            return true;
        case '0':
            lx->state = LX_ZERO;
            return true;
        case '-':
            lx->state = LX_SIGN;
            return true;
        default:
            if (c >= '1' && c <= '9') {
                lx->state = LX_DIGITS;
            } else if (c >= 'a' && c <= 'z') {
                lx->state = LX_KEYWORD;
            } else {
                lex_error(lx);
            }
            return true;
        }

    case LX_RECOVERY:
        if (strchr("{}[]:,", c) && c != '\0') {
            lx->state = LX_START;
            return false;
        }
        if ((c < 0x20 && c != '\t') || c >= 0xFE) {
            lx->state = LX_START;
            return false;
        }
        return true;

    case LX_STRING:
        g_string_append_c(lx->token, (char)c);
        if (c == (unsigned char)lx->quote) {
            lex_finish(lx, BD_JSON_STRING);
        } else if (c == '\\') {
            lx->state = LX_STRING_ESC;
        } else if (c < 0x20 || c >= 0xFE) {
            lex_error(lx);
        }
        return true;

    case LX_STRING_ESC:
        /* any printable byte; the parser rejects unknown escapes */
        g_string_append_c(lx->token, (char)c);
        if (c >= 0x20 && c < 0xFE) {
            lx->state = LX_STRING;
        } else {
            lex_error(lx);
        }
        return true;

    case LX_SIGN:
        g_string_append_c(lx->token, (char)c);
        if (c == '0') {
            lx->state = LX_ZERO;
        } else if (c >= '1' && c <= '9') {
            lx->state = LX_DIGITS;
        } else {
            lex_error(lx);
        }
        return true;

    case LX_ZERO:
    case LX_DIGITS:
        if (is_digit(c)) {
            g_string_append_c(lx->token, (char)c);
            if (lx->state == LX_ZERO) {
                lex_error(lx);   /* no leading zeros */
            }
            return true;
        }
        if (c == '.') {
            g_string_append_c(lx->token, (char)c);
            lx->state = LX_DOT;
            return true;
        }
        if (c == 'e' || c == 'E') {
            g_string_append_c(lx->token, (char)c);
            lx->state = LX_EXP;
            return true;
        }
        lex_finish(lx, BD_JSON_INTEGER);
        return false;

    case LX_DOT:
        g_string_append_c(lx->token, (char)c);
        if (is_digit(c)) {
            lx->state = LX_FRACTION;
        } else {
            lex_error(lx);
        }
        return true;

    case LX_FRACTION:
        if (is_digit(c)) {
            g_string_append_c(lx->token, (char)c);
            return true;
        }
        if (c == 'e' || c == 'E') {
            g_string_append_c(lx->token, (char)c);
            lx->state = LX_EXP;
            return true;
        }
        lex_finish(lx, BD_JSON_FLOAT);
        return false;

    case LX_EXP:
        g_string_append_c(lx->token, (char)c);
        if (c == '+' || c == '-') {
            lx->state = LX_EXP_SIGN;
        } else if (is_digit(c)) {
            lx->state = LX_EXP_DIGITS;
        } else {
            lex_error(lx);
        }
        return true;

    case LX_EXP_SIGN:
        g_string_append_c(lx->token, (char)c);
        if (is_digit(c)) {
            lx->state = LX_EXP_DIGITS;
        } else {
            lex_error(lx);
        }
        return true;

    case LX_EXP_DIGITS:
        if (is_digit(c)) {
            g_string_append_c(lx->token, (char)c);
            return true;
        }
        lex_finish(lx, BD_JSON_FLOAT);
        return false;

    case LX_KEYWORD:
        if (c >= 'a' && c <= 'z') {
            g_string_append_c(lx->token, (char)c);
            return true;
        }
        lex_finish(lx, BD_JSON_KEYWORD);
        return false;
    }
    g_assert_not_reached();
}

void bd_json_lexer_init(BdJsonLexer *lx, BdJsonTokenFn fn, void *opaque)
{
    lx->token_fn = fn;
    lx->opaque = opaque;
    lx->state = LX_START;
    lx->quote = 0;
    lx->token = g_string_new(NULL);
}

void bd_json_lexer_feed(BdJsonLexer *lx, const char *buf, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        while (!lex_char(lx, (unsigned char)buf[i])) {
            /* the character ended a token; feed it again */
        }
        if (lx->token->len > BD_JSON_MAX_TOKEN_SIZE) {
            /* one endless token: hand it on to be refused, then drop it */
            lex_finish(lx, BD_JSON_OVERSIZED);
        }
    }
}

void bd_json_lexer_flush(BdJsonLexer *lx)
{
    switch (lx->state) {
    case LX_START:
    case LX_RECOVERY:
        break;
    case LX_ZERO:
    case LX_DIGITS:
        lex_finish(lx, BD_JSON_INTEGER);
        break;
    case LX_FRACTION:
    case LX_EXP_DIGITS:
        lex_finish(lx, BD_JSON_FLOAT);
        break;
    case LX_KEYWORD:
        lex_finish(lx, BD_JSON_KEYWORD);
        break;
    default:
        lex_error(lx);
        break;
    }
    lx->state = LX_START;
    g_string_truncate(lx->token, 0);
}

void bd_json_lexer_destroy(BdJsonLexer *lx)
{
    g_string_free(lx->token, true);
    lx->token = NULL;
}
