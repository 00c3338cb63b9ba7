/*
 * normalize.c: request path normalization (policy in normalize.h).
 */
#include "worker/normalize.h"

/* RFC 3986 2.3: unreserved = ALPHA / DIGIT / "-" / "." / "_" / "~" */
static int is_unreserved(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

/* RFC 3986 3.3: pchar = unreserved / pct-encoded / sub-delims / ":" / "@"; '%' is handled
   by the caller, '/' separates segments.  Bytes >= 0x80 pass too, by policy (RFC 3987
   ucschar, loosely: they are not checked to be UTF-8). */
static int is_raw_pchar(unsigned char c)
{
    return is_unreserved(c) || c >= 0x80 || (c != 0 && strchr("!$&'()*+,;=:@", c) != NULL);
}

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (unsigned char)pt_lower((char)c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/*
 * Copies the escape starting at <in>[*<i>] (a '%') to <out>+*<o>: decoded if it stands for
 * an unreserved character, else kept as three bytes with upper-case hex.  Advances both
 * indexes.  Returns PT_OK, or 400 for a malformed escape or %00 (a NUL would truncate the
 * path for anything downstream that treats it as a C string).
 */
static int copy_escape(const char *in, size_t len, size_t *i, char *out, size_t *o)
{
    static const char hex[] = "0123456789ABCDEF";
    int hi, lo, v;

    if (len - *i < 3)
        return 400;
    hi = hex_value((unsigned char)in[*i + 1]);
    lo = hex_value((unsigned char)in[*i + 2]);
    if (hi < 0 || lo < 0)
        return 400;
    v = hi << 4 | lo;
    if (v == 0)
        return 400;
    *i += 3;
    if (is_unreserved((unsigned char)v)) {
        out[(*o)++] = (char)v;
        return PT_OK;
    }
    out[(*o)++] = '%';
    out[(*o)++] = hex[hi];
    out[(*o)++] = hex[lo];
    return PT_OK;
}

/*
 * Copies one segment of <in> from *<i> up to the next '/' or the end to <out>+*<o>,
 * decoding as the policy says.  Returns PT_OK or 400.
 */
static int copy_segment(const char *in, size_t len, size_t *i, char *out, size_t *o)
{
    while (*i < len && in[*i] != '/') {
        unsigned char c = (unsigned char)in[*i];

        if (c == '%') {
            if (copy_escape(in, len, i, out, o) != PT_OK)
                return 400;
            continue;
        }
        if (!is_raw_pchar(c))
            return 400;
        (*i)++;
        if (c >= 0x80) {
            /* Raw UTF-8 takes its escaped form, the one browsers send, so that both
             * spellings are one path. */
            static const char hex[] = "0123456789ABCDEF";
            out[(*o)++] = '%';
            out[(*o)++] = hex[c >> 4];
            out[(*o)++] = hex[c & 15];
            continue;
        }
        out[(*o)++] = (char)c;
    }
    return PT_OK;
}

/*
 * Applies the segment just written at <out>[<seg>..*<o>) if it is a dot segment: "." is
 * dropped, ".." also drops the previous segment.  The slash before the segment is kept,
 * which is what leaves "/a/b/.." as "/a/".  Returns PT_OK, or 400 for ".." above the root.
 */
static int apply_dot_segment(char *out, size_t seg, size_t *o)
{
    size_t n = *o - seg;

    if (n == 1 && out[seg] == '.') {
        *o = seg;
        return PT_OK;
    }
    if (n != 2 || out[seg] != '.' || out[seg + 1] != '.')
        return PT_OK;
    if (seg == 1)
        return 400;
    /* out[seg - 1] is this segment's slash; back up to just after the one before it. */
    *o = seg - 1;
    while (out[*o - 1] != '/')
        (*o)--;
    return PT_OK;
}

int pt_path_normalize(const char *in, size_t len, char *out, size_t *out_len)
{
    size_t i = 0, o = 0;

    if (len == 0 || in[0] != '/')
        return 400;

    /* Invariant at the top: in[i] == '/'.  Output grows past the input only by the
     * escapes of raw bytes >= 0x80 (three bytes for one). */
    while (i < len) {
        size_t seg;

        while (i < len && in[i] == '/')
            i++;
        /* A dropped dot segment leaves the output ending in '/'; do not double it. */
        if (o == 0 || out[o - 1] != '/')
            out[o++] = '/';
        seg = o;
        if (copy_segment(in, len, &i, out, &o) != PT_OK)
            return 400;
        if (apply_dot_segment(out, seg, &o) != PT_OK)
            return 400;
    }
    out[o] = '\0';
    *out_len = o;
    return PT_OK;
}
