/*
 * normalize.h: the one canonical form of a request path.
 *
 * A request path is normalized once, right after parsing, and that one canonical path is
 * what routing (locations) and access rules see.  Two spellings of the same resource must
 * not reach different rules, so the policy below is fixed and stated here:
 *
 *  - Percent-escapes of unreserved characters (RFC 3986 2.3: ALPHA DIGIT - . _ ~) are
 *    decoded: "%7Euser" -> "~user", "%2e" -> ".".  Every other escape stays encoded, with
 *    its hex digits upper-cased: "%2f" -> "%2F", "%3a" -> "%3A".
 *  - An encoded slash is NOT a path separator: "/a%2Fb" is one segment "a%2Fb".  It stays
 *    encoded, so a location "/a/" does not match it and a backend sees it as the client
 *    sent it (modulo hex case).
 *  - Encoded dots ARE dots: "%2e%2E" decodes to ".." and is treated as a dot segment.
 *  - Runs of '/' are merged into one: "//a///b" -> "/a/b".
 *  - "." segments are removed; ".." removes the previous segment; a trailing "/." or
 *    "/.." leaves a trailing slash ("/a/b/.." -> "/a/", "/a/." -> "/a/").
 *  - Raw bytes >= 0x80 (unencoded UTF-8, which nginx and the desync corpus accept) are
 *    percent-encoded with upper-case hex, the form browsers send: "/caf\xC3\xA9" and
 *    "/caf%c3%a9" are both "/caf%C3%A9", so a location written either way matches both.
 *  - Rejected with 400: ".." above the root ("/.." , "/a/../.."), as nginx does;
 *    a malformed escape ("%G1", a truncated "%4"); "%00"; a raw ASCII byte that RFC 3986
 *    does not allow in a path (anything but unreserved, sub-delims, ':', '@', '/' and
 *    '%'), which includes every CTL, SP, DEL, '\', '"', '<', '>', '^', '`', '{', '|' and
 *    '}'; a path that does not start with '/'.
 */
#ifndef PT_NORMALIZE_H
#define PT_NORMALIZE_H

#include "core/pt.h"

/*
 * Normalizes the request path <in>/<len> (the target's path part, without the query,
 * starting with '/') into <out>, following the policy above.  The caller gives <out> at
 * least 3*<len>+1 bytes: the canonical form grows only by escaping raw bytes >= 0x80.  On success
 * <out> is NUL-terminated, *<out_len> is set to its length (without the NUL) and PT_OK is
 * returned.  Otherwise returns 400 and the contents of <out> are unspecified.  Does not
 * allocate.
 */
int pt_path_normalize(const char *in, size_t len, char *out, size_t *out_len);

#endif
