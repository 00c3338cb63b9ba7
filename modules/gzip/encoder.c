/*
 * encoder.c: streaming compressors behind one interface: gzip (zlib), and brotli and zstd
 * when the build found their libraries (PT_HAVE_BROTLI, PT_HAVE_ZSTD).  Each keeps one
 * output buffer; input is taken whole on every call, so memory stays bounded by the
 * compressor's window and that buffer, whatever the size of the response.
 */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#ifdef PT_HAVE_BROTLI
#include <brotli/encode.h>
#endif
#ifdef PT_HAVE_ZSTD
#include <zstd.h>
#endif

#include "modules/gzip/gzip.h"

#define OUT_SIZE 16384
#define SPARE    8 /* finished gzip and zstd encoders kept for reuse, per process */

struct pt_encoder {
    enum pt_coding coding;
    int level;
    struct pt_encoder *next_spare;
    z_stream z;
#ifdef PT_HAVE_BROTLI
    BrotliEncoderState *br;
#endif
#ifdef PT_HAVE_ZSTD
    ZSTD_CStream *zs;
#endif
    char out[OUT_SIZE];
};

unsigned pt_encoder_available(void)
{
    unsigned m = 1u << PT_CODING_GZIP;
#ifdef PT_HAVE_BROTLI
    m |= 1u << PT_CODING_BR;
#endif
#ifdef PT_HAVE_ZSTD
    m |= 1u << PT_CODING_ZSTD;
#endif
    return m;
}

static int clamp(int v, int lo, int hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* Finished encoders of this process, ready for another response.  A compressor's state is
 * a few hundred KiB that malloc would hand back to the kernel and take again, zero-filled,
 * for every response (brk and page faults cost more than compressing 100 KiB at level 1):
 * resetting one is far cheaper. */
static struct pt_encoder *spare;
static int nspare;

/* A spare encoder for <coding> at <level>, reset for a new stream; NULL when there is none. */
static struct pt_encoder *take_spare(enum pt_coding coding, int level)
{
    for (struct pt_encoder **pp = &spare; *pp; pp = &(*pp)->next_spare) {
        struct pt_encoder *e = *pp;
        int ok;
        if (e->coding != coding || e->level != level)
            continue;
        *pp = e->next_spare;
        nspare--;
        e->next_spare = NULL;
        ok = coding == PT_CODING_GZIP ? deflateReset(&e->z) == Z_OK : 0;
#ifdef PT_HAVE_ZSTD
        if (coding == PT_CODING_ZSTD)
            ok = !ZSTD_isError(ZSTD_CCtx_reset(e->zs, ZSTD_reset_session_only));
#endif
        if (ok)
            return e;
        pt_encoder_free(e);
        return NULL;
    }
    return NULL;
}

struct pt_encoder *pt_encoder_new(enum pt_coding coding, int level)
{
    struct pt_encoder *e = take_spare(coding, level);

    if (e)
        return e;
    e = calloc(1, sizeof(*e));
    if (e == NULL)
        return NULL;
    e->coding = coding;
    e->level = level;
    switch (coding) {
    case PT_CODING_GZIP:
        /* 16 + 15: a gzip wrapper around a 32 KiB window; memLevel 8 is zlib's default. */
        if (deflateInit2(&e->z, clamp(level, 1, 9), Z_DEFLATED, 16 + 15, 8, Z_DEFAULT_STRATEGY) ==
            Z_OK)
            return e;
        break;
#ifdef PT_HAVE_BROTLI
    case PT_CODING_BR:
        e->br = BrotliEncoderCreateInstance(NULL, NULL, NULL);
        if (e->br &&
            BrotliEncoderSetParameter(e->br, BROTLI_PARAM_QUALITY, (uint32_t)clamp(level, 0, 11)) &&
            BrotliEncoderSetParameter(e->br, BROTLI_PARAM_LGWIN, 18))
            return e;
        break;
#endif
#ifdef PT_HAVE_ZSTD
    case PT_CODING_ZSTD:
        e->zs = ZSTD_createCStream();
        if (e->zs && !ZSTD_isError(ZSTD_CCtx_setParameter(e->zs, ZSTD_c_compressionLevel,
                                                          clamp(level, 1, 19))))
            return e;
        break;
#endif
    default: break;
    }
    pt_encoder_free(e);
    return NULL;
}

static int gzip_write(struct pt_encoder *e, const char *in, size_t len, enum pt_enc_mode mode,
                      int (*emit)(void *, const char *, size_t), void *arg)
{
    int flush = mode == PT_ENC_END ? Z_FINISH : mode == PT_ENC_FLUSH ? Z_SYNC_FLUSH : Z_NO_FLUSH;
    int rc;

    e->z.next_in = (Bytef *)in;
    e->z.avail_in = (uInt)len;
    do {
        size_t n;
        e->z.next_out = (Bytef *)e->out;
        e->z.avail_out = OUT_SIZE;
        rc = deflate(&e->z, flush);
        if (rc == Z_STREAM_ERROR)
            return PT_ERROR;
        n = OUT_SIZE - e->z.avail_out;
        if (n && emit(arg, e->out, n) != PT_OK)
            return PT_ERROR;
        /* Done when the input is taken and the output did not fill the buffer (or, at the
         * end, when zlib says the stream is complete). */
    } while (mode == PT_ENC_END ? rc != Z_STREAM_END : e->z.avail_out == 0 || e->z.avail_in);
    return PT_OK;
}

#ifdef PT_HAVE_BROTLI
static int br_write(struct pt_encoder *e, const char *in, size_t len, enum pt_enc_mode mode,
                    int (*emit)(void *, const char *, size_t), void *arg)
{
    BrotliEncoderOperation op = mode == PT_ENC_END     ? BROTLI_OPERATION_FINISH
                                : mode == PT_ENC_FLUSH ? BROTLI_OPERATION_FLUSH
                                                       : BROTLI_OPERATION_PROCESS;
    const uint8_t *next_in = (const uint8_t *)in;
    size_t avail_in = len;

    for (;;) {
        uint8_t *next_out = (uint8_t *)e->out;
        size_t avail_out = OUT_SIZE, n;
        if (!BrotliEncoderCompressStream(e->br, op, &avail_in, &next_in, &avail_out, &next_out,
                                         NULL))
            return PT_ERROR;
        n = OUT_SIZE - avail_out;
        if (n && emit(arg, e->out, n) != PT_OK)
            return PT_ERROR;
        if (avail_in == 0 && !BrotliEncoderHasMoreOutput(e->br) &&
            (op != BROTLI_OPERATION_FINISH || BrotliEncoderIsFinished(e->br)))
            return PT_OK;
    }
}
#endif

#ifdef PT_HAVE_ZSTD
static int zstd_write(struct pt_encoder *e, const char *in, size_t len, enum pt_enc_mode mode,
                      int (*emit)(void *, const char *, size_t), void *arg)
{
    ZSTD_EndDirective op = mode == PT_ENC_END     ? ZSTD_e_end
                           : mode == PT_ENC_FLUSH ? ZSTD_e_flush
                                                  : ZSTD_e_continue;
    ZSTD_inBuffer ib = {in, len, 0};

    for (;;) {
        ZSTD_outBuffer ob = {e->out, OUT_SIZE, 0};
        size_t left = ZSTD_compressStream2(e->zs, &ob, &ib, op);
        if (ZSTD_isError(left))
            return PT_ERROR;
        if (ob.pos && emit(arg, e->out, ob.pos) != PT_OK)
            return PT_ERROR;
        /* continue: done once the input is taken; flush and end: once nothing is left. */
        if (op == ZSTD_e_continue ? ib.pos == ib.size : left == 0)
            return PT_OK;
    }
}
#endif

int pt_encoder_write(struct pt_encoder *e, const char *in, size_t len, enum pt_enc_mode mode,
                     int (*emit)(void *arg, const char *out, size_t n), void *arg)
{
    switch (e->coding) {
#ifdef PT_HAVE_BROTLI
    case PT_CODING_BR: return br_write(e, in, len, mode, emit, arg);
#endif
#ifdef PT_HAVE_ZSTD
    case PT_CODING_ZSTD: return zstd_write(e, in, len, mode, emit, arg);
#endif
    case PT_CODING_GZIP: return gzip_write(e, in, len, mode, emit, arg);
    default: return PT_ERROR;
    }
}

void pt_encoder_done(struct pt_encoder *e)
{
    if (e == NULL)
        return;
    /* brotli has no reset: its encoders are not kept. */
    if (nspare < SPARE && e->coding != PT_CODING_BR) {
        e->next_spare = spare;
        spare = e;
        nspare++;
        return;
    }
    pt_encoder_free(e);
}

int pt_encoder_spares(void)
{
    return nspare;
}

void pt_encoder_free(struct pt_encoder *e)
{
    if (e == NULL)
        return;
    if (e->coding == PT_CODING_GZIP)
        deflateEnd(&e->z);
#ifdef PT_HAVE_BROTLI
    BrotliEncoderDestroyInstance(e->br);
#endif
#ifdef PT_HAVE_ZSTD
    ZSTD_freeCStream(e->zs);
#endif
    free(e);
}
