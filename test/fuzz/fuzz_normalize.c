/*
 * fuzz_normalize.c: libFuzzer target for the path normalizer (pt_path_normalize).
 *
 * An input is a request path.  When it is accepted, its canonical form must be what
 * normalize.h promises: it starts with '/', has no empty, "." or ".." segment, holds only
 * unreserved characters, sub-delims, ':', '@', '/' and escapes of other bytes with
 * upper-case hex, fits the 3*len+1 bytes the caller gives, and is NUL-terminated at
 * out_len.  And it must be a fixed point: normalizing it again gives it back, so that a
 * path normalized twice (by two layers) cannot reach another rule than one normalized once.
 */
#include "fuzz.h"
#include "worker/normalize.h"

static int is_unreserved(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

static int is_upper_hex(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
}

static int hex_value(unsigned char c)
{
    return c <= '9' ? c - '0' : c - 'A' + 10;
}

/* Asserts that <out>/<len> is a canonical path as normalize.h states it. */
static void check_canonical(const char *out, size_t len)
{
    fuzz_check(len >= 1 && out[0] == '/', "canonical path does not start with '/'");
    fuzz_check(out[len] == '\0' && strlen(out) == len, "not NUL-terminated at out_len");
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)out[i];

        if (c == '/') {
            size_t seg = i + 1, end = seg;
            while (end < len && out[end] != '/')
                end++;
            fuzz_check(end > seg || end == len, "empty segment at %zu: \"%s\"", i, out);
            fuzz_check(!(end - seg == 1 && out[seg] == '.'), "\".\" segment: \"%s\"", out);
            fuzz_check(!(end - seg == 2 && out[seg] == '.' && out[seg + 1] == '.'),
                       "\"..\" segment: \"%s\"", out);
            continue;
        }
        if (c == '%') {
            fuzz_check(i + 2 < len && is_upper_hex((unsigned char)out[i + 1]) &&
                           is_upper_hex((unsigned char)out[i + 2]),
                       "escape not two upper-case hex digits at %zu: \"%s\"", i, out);
            int v =
                hex_value((unsigned char)out[i + 1]) << 4 | hex_value((unsigned char)out[i + 2]);
            fuzz_check(v != 0 && !is_unreserved((unsigned char)v),
                       "escape %%%c%c left encoded: \"%s\"", out[i + 1], out[i + 2], out);
            i += 2;
            continue;
        }
        fuzz_check(is_unreserved(c) || (c != 0 && strchr("!$&'()*+,;=:@", c) != NULL),
                   "byte 0x%02x left raw at %zu: \"%s\"", c, i, out);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *in = malloc(size ? size : 1), *out = malloc(3 * size + 1), *again;
    size_t out_len = 0, again_len = 0;
    int rc;

    if (in == NULL || out == NULL)
        abort();
    /* A copy of exactly <size> bytes, so that ASan sees a read past the path. */
    memcpy(in, data, size);
    rc = pt_path_normalize(in, size, out, &out_len);
    fuzz_check(rc == PT_OK || rc == 400, "returned %d", rc);
    if (rc == PT_OK) {
        fuzz_check(out_len <= 3 * size, "%zu bytes out of %zu in", out_len, size);
        check_canonical(out, out_len);
        again = malloc(3 * out_len + 1);
        if (again == NULL)
            abort();
        rc = pt_path_normalize(out, out_len, again, &again_len);
        fuzz_check(rc == PT_OK, "\"%s\" is refused once normalized", out);
        fuzz_check(again_len == out_len && memcmp(again, out, out_len) == 0,
                   "\"%s\" normalizes to \"%s\"", out, again);
        free(again);
    }
    free(in);
    free(out);
    return 0;
}
