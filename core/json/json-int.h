/*
 * The layers of blockd's JSON reader, shared by its front ends
 * (json-stream.c for QMP, json-oneshot.c for the command line).  As in
 * QEMU, and because where an error is reported depends on it:
 *
 * - the lexer (json-lexer.c) turns bytes into tokens and reports a byte
 *   no token may hold as an error token;
 * - the streamer (json-stream.c) queues tokens until the brackets balance
 *   and enforces the limits;
 * - the parser (json-parser.c) builds a value from one queued sequence.
 *
 * Internal to the core; single-threaded per lexer/stream.
 */
#ifndef BLOCKD_CORE_JSON_INT_H
#define BLOCKD_CORE_JSON_INT_H

#include <stdbool.h>
#include <stddef.h>

#include <glib.h>
#include <json-glib/json-glib.h>

/* QEMU's limits on one value, kept so that a peer sees the same errors. */
#define BD_JSON_MAX_TOKEN_SIZE (64u << 20)    /* bytes of token text */
#define BD_JSON_MAX_TOKEN_COUNT (2u << 20)
#define BD_JSON_MAX_NESTING 1024

typedef enum BdJsonTokenType {
    BD_JSON_LCURLY,
    BD_JSON_RCURLY,
    BD_JSON_LSQUARE,
    BD_JSON_RSQUARE,
    BD_JSON_COLON,
    BD_JSON_COMMA,
    BD_JSON_INTEGER,
    BD_JSON_FLOAT,
    BD_JSON_KEYWORD,            /* [a-z]+; the parser knows the words */
    BD_JSON_STRING,             /* quotes and escapes still in the text */
    BD_JSON_ERROR,              /* text that cannot be (part of) a token */
    BD_JSON_OVERSIZED,          /* a token cut off at the size limit */
} BdJsonTokenType;

/*
 * Receives every token: @text is its NUL-terminated text of @len bytes
 * (BD_JSON_ERROR: the bad token so far, the offending byte included).
 */
typedef void (*BdJsonTokenFn)(void *opaque, BdJsonTokenType type,
                              const char *text, size_t len);

typedef struct BdJsonLexer {
    BdJsonTokenFn token_fn;
    void *opaque;
    unsigned state;             /* private to json-lexer.c */
    char quote;                 /* of the string being read */
    GString *token;             /* text of the token being read */
} BdJsonLexer;

/* Start @lexer, which is to report tokens to @fn(@opaque, ...). */
void bd_json_lexer_init(BdJsonLexer *lexer, BdJsonTokenFn fn, void *opaque);

/* Feed @len bytes (any bytes, NUL included); reports the tokens they end. */
void bd_json_lexer_feed(BdJsonLexer *lexer, const char *buf, size_t len);

/* End of input: report the token in progress (or an error for it). */
void bd_json_lexer_flush(BdJsonLexer *lexer);

/* Free what @lexer holds; a pending token is dropped. */
void bd_json_lexer_destroy(BdJsonLexer *lexer);

/* A queued token: its text is at @offset in the streamer's buffer. */
typedef struct BdJsonToken {
    BdJsonTokenType type;       /* never BD_JSON_ERROR/OVERSIZED */
    size_t offset;
    size_t len;
} BdJsonToken;

/*
 * Parse @n tokens whose NUL-terminated texts are in @text as one value.
 * Returns a new node, or NULL with @errp set to QEMU's message for the
 * first error met ("JSON parse error, ...").
 */
JsonNode *bd_json_parser_parse(const BdJsonToken *tokens, guint n,
                               const char *text, GError **errp);

#endif /* BLOCKD_CORE_JSON_INT_H */
