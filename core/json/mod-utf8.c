/*
 * Modified UTF-8 (see mod-utf8.h).
 */
#include "json/mod-utf8.h"

bool bd_mod_utf8_codepoint_valid(long cp)
{
    if (cp < 0 || cp > 0x10FFFF) {
        return false;
    }
    if ((cp >= 0xFDD0 && cp <= 0xFDEF) || (cp & 0xFFFE) == 0xFFFE) {
        return false;           /* noncharacters */
    }
    if (cp >= 0xD800 && cp <= 0xDFFF) {
        return false;           /* surrogates never stand alone */
    }
    return true;
}

long bd_mod_utf8_decode(const char *s, const char **end)
{
    static const long shortest[] = { 0x80, 0x800, 0x10000, 0x200000,
                                     0x4000000 };
    const unsigned char *p = (const unsigned char *)s;
    unsigned first = *p++;
    unsigned len = 0;
    long cp;

    if (first < 0x80) {
        *end = (const char *)p;
        return first;
    }
    if (first >= 0xFE || !(first & 0x40)) {
        *end = (const char *)p;
        return -1;              /* 0xFE/0xFF or a stray continuation */
    }
    for (unsigned mask = 0x80; first & mask; mask >>= 1) {
        len++;
    }
    cp = first & ((1u << (7 - len)) - 1);
    for (unsigned i = 1; i < len; i++) {
        if ((*p & 0xC0) != 0x80) {
            *end = (const char *)p;
            return -1;
        }
        cp = (cp << 6) | (*p++ & 0x3F);
    }
    *end = (const char *)p;
    if (!bd_mod_utf8_codepoint_valid(cp)) {
        return -1;
    }
    if (cp < shortest[len - 2] && !(cp == 0 && len == 2)) {
        return -1;              /* overlong */
    }
    return cp;
}

bool bd_mod_utf8_append(GString *out, long cp)
{
    if (!bd_mod_utf8_codepoint_valid(cp)) {
        return false;
    }
    if (cp > 0 && cp < 0x80) {
        g_string_append_c(out, (char)cp);
    } else if (cp < 0x800) {
        /* U+0000 lands here too, as C0 80 */
        g_string_append_c(out, (char)(0xC0 | (cp >> 6)));
        g_string_append_c(out, (char)(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        g_string_append_c(out, (char)(0xE0 | (cp >> 12)));
        g_string_append_c(out, (char)(0x80 | ((cp >> 6) & 0x3F)));
        g_string_append_c(out, (char)(0x80 | (cp & 0x3F)));
    } else {
        g_string_append_c(out, (char)(0xF0 | (cp >> 18)));
        g_string_append_c(out, (char)(0x80 | ((cp >> 12) & 0x3F)));
        g_string_append_c(out, (char)(0x80 | ((cp >> 6) & 0x3F)));
        g_string_append_c(out, (char)(0x80 | (cp & 0x3F)));
    }
    return true;
}
