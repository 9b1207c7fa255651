/*
 * The command-line option syntaxes of qemu-storage-daemon.
 *
 * --blockdev, --export, --object, --nbd-server and --monitor take either
 * a JSON object or QEMU's "keyval" syntax (key=value,... with dotted keys
 * for nesting and numeric keys for lists); --chardev takes the older
 * QemuOpts syntax (flat key=value,... with short-form booleans).  The
 * parsers here only build the tree: every scalar they produce from
 * key=value text is a string, and converting strings to the types the
 * schema wants is the schema engine's job (bd_schema_check_type() with
 * keyval=true).
 *
 * Errors are in the BD_ERROR domain, code BD_ERROR_GENERIC, and their
 * messages are the ones qemu-storage-daemon 7.2 prints for the same input
 * (the caller adds the "blockd: --blockdev ARG: " prefix).
 *
 * All functions are pure (no global state) and may be called from any
 * thread.
 */
#ifndef BLOCKD_CORE_KEYVAL_H
#define BLOCKD_CORE_KEYVAL_H

#include <stdbool.h>

#include <glib.h>
#include <json-glib/json-glib.h>

/* Longest key fragment keyval accepts, in bytes (QEMU's limit). */
#define BD_KEYVAL_FRAGMENT_MAX 127

/*
 * Parse @params in keyval syntax into a new object (caller unrefs).
 *
 * Grammar: elements separated by ','; each is KEY=VALUE, where KEY is
 * fragments joined by '.', the first a QAPI name, later ones a QAPI name
 * or a decimal index; ",," in VALUE stands for one ','; a trailing ','
 * is allowed.  An object whose keys are all indices becomes an array in
 * index order (indices must run from 0 without gaps).  The same key given
 * twice keeps the last value.
 *
 * @implied_key: if not NULL and the first element has no '=', that element
 * is the value of @implied_key (it ends at the first ',' and cannot use
 * ",," escaping).
 *
 * @help: an element that is exactly "help" or "?" asks for help.  If @help
 * is not NULL, *@help says whether any element asked for help (parsing goes
 * on, so later errors are still reported); if @help is NULL, asking for
 * help is the error "Help is not available for this option".
 *
 * Returns NULL with @errp set on a syntax error (messages as QEMU's:
 * "Invalid parameter 'a..b'", "Expected '=' after parameter 'x'",
 * "Parameters 'a.*' used inconsistently", "Parameter 'a.0' missing",
 * "Parameter 'x' is too long", ...).  An empty @params gives an empty
 * object.
 */
JsonObject *bd_keyval_parse(const char *params, const char *implied_key,
                            bool *help, GError **errp);

/*
 * Parse one command-line option argument of the options that accept
 * both syntaxes.  If @arg starts with '{' it is read as JSON the way QEMU
 * reads it (single-quoted strings allowed, duplicate keys refused, QEMU's
 * messages: "JSON parse error, premature EOI", "Expecting at most one JSON
 * value", ...), *@is_json is set and *@help is set to false; otherwise it is
 * bd_keyval_parse(@arg, @implied_key, @help, errp) and *@is_json is false.
 * @is_json may be NULL.  Returns a new object (caller unrefs) or NULL
 * with @errp set.
 */
JsonObject *bd_cli_parse_option(const char *arg, const char *implied_key,
                                bool *help, bool *is_json, GError **errp);

/*
 * Parse @params in QemuOpts syntax (--chardev) into a new flat object of
 * string members (caller unrefs).
 *
 * Elements are NAME=VALUE separated by ',', with ",," in VALUE for one
 * ','.  If @implied_key is not NULL and the first element has no '=', the
 * whole element (",," escaping allowed) is the value of @implied_key.  Any
 * other element without '=' is a short-form boolean: "NAME" means
 * NAME=on and "noNAME" means NAME=off (deprecated in QEMU, see
 * bd_qemu_opts_parse_full() for the warnings).  A repeated name keeps the
 * last value.  Names are not checked: telling unknown names apart
 * ("Invalid parameter 'foo'") is the caller's job.
 *
 * "id" is special, as in QemuOpts: the first id= anywhere is the object's
 * "id" member and must be an identifier (a letter, then letters, digits,
 * '-', '.', '_'), else the error is "Parameter 'id' expects an identifier"
 * followed by a second line with QEMU's hint; later id= are ignored.
 *
 * With this function a short-form "help" or "?" is just the boolean
 * "help"/"?" = "on" (QemuOpts does the same for option lists without
 * help); use bd_qemu_opts_parse_full() to be told about help instead.
 */
JsonObject *bd_qemu_opts_parse(const char *params, const char *implied_key,
                               GError **errp);

/*
 * bd_qemu_opts_parse() with two more outputs.
 *
 * @help: if not NULL, a short-form "help" or "?" element (not the implied
 * first one) sets *@help to true and stops parsing there; the object
 * parsed so far is returned (the caller should still check its names
 * before printing help, as QemuOpts does).  *@help is false otherwise.
 *
 * @warnings: if not NULL, one string is appended (g_free'd by the array's
 * free function, which the caller sets) per short-form boolean, with
 * QEMU's text: "short-form boolean option 'server' deprecated\n"
 * "Please use server=on instead".
 */
JsonObject *bd_qemu_opts_parse_full(const char *params,
                                    const char *implied_key, bool *help,
                                    GPtrArray *warnings, GError **errp);

#endif /* BLOCKD_CORE_KEYVAL_H */
