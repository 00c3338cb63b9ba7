/*
 * http_chars.h: the character classes of HTTP/1.1 syntax, shared by the parsers
 * (http_parse.c) and the Transfer-Encoding field parser (http_te.c), so that "token" or
 * "field value" means the same bytes everywhere.  Internal to the HTTP parsers.
 */
#ifndef PT_HTTP_CHARS_H
#define PT_HTTP_CHARS_H

#include "core/pt.h"

/*
 * Character classes.  TCHAR: RFC 9110 5.6.2 token characters.  VALUE: field-vchar, SP and
 * HTAB, including obs-text (RFC 9110 5.5).  TARGET: what a request-target may hold: any
 * VCHAR (the URI grammar is left to normalize.c; '#', '"', '{' ... are tolerated here as
 * every common server does) and, by policy, obs-text (raw UTF-8); no CTL, SP or DEL.
 * REGNAME: RFC 3986 reg-name characters (unreserved, sub-delims and '%').  HEX: HEXDIG.
 */
enum {
    PT_HTTP_C_TCHAR = 1,
    PT_HTTP_C_VALUE = 2,
    PT_HTTP_C_TARGET = 4,
    PT_HTTP_C_REGNAME = 8,
    PT_HTTP_C_HEX = 16,
};

/* The classes of each byte, an OR of PT_HTTP_C_*; read it through pt_http_has_class(). */
extern const uint8_t pt_http_cclass[256];

/* Returns non-zero if the byte <c> is in one of the classes <cls> (an OR of PT_HTTP_C_*). */
static inline int pt_http_has_class(char c, int cls)
{
    return pt_http_cclass[(unsigned char)c] & cls;
}

/* Returns 1 if <c> is OWS, BWS or RWS material: SP or HTAB (RFC 9110 5.6.3). */
static inline int pt_http_is_ows(char c)
{
    return c == ' ' || c == '\t';
}

#endif
