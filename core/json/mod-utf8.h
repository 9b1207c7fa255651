/*
 * QEMU's "modified UTF-8": UTF-8 in which U+0000 is the two bytes C0 80,
 * so that a string never holds a NUL byte.  QEMU reads and writes JSON
 * strings in it, and so do blockd's JSON reader and QMP writer.
 *
 * Pure; callable from any thread.
 */
#ifndef BLOCKD_CORE_MOD_UTF8_H
#define BLOCKD_CORE_MOD_UTF8_H

#include <stdbool.h>

#include <glib.h>

/*
 * Whether QEMU lets code point @cp into a string: at most U+10FFFF, no
 * surrogate, no noncharacter (U+FDD0..U+FDEF, U+xxFFFE, U+xxFFFF).
 */
bool bd_mod_utf8_codepoint_valid(long cp);

/*
 * Decode one character from the NUL-terminated @s and set *@end past the
 * bytes examined (at least one).  Returns the code point, or -1 for
 * anything but a valid code point in shortest form (C0 80 for U+0000 is
 * accepted; a NUL byte ends a sequence early and makes it invalid).
 */
long bd_mod_utf8_decode(const char *s, const char **end);

/*
 * Append @cp to @out in modified UTF-8.  Returns false, appending
 * nothing, when !bd_mod_utf8_codepoint_valid(@cp).
 */
bool bd_mod_utf8_append(GString *out, long cp);

#endif /* BLOCKD_CORE_MOD_UTF8_H */
