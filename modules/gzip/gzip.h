/*
 * gzip.h: what the files of the gzip module share.
 *   gzip.c       the module: directives, the header filter that decides, the body filter
 *   negotiate.c  Accept-Encoding (RFC 9110 12.5.3): which coding the client gets
 *   encoder.c    streaming gzip, and brotli and zstd where the build found them
 */
#ifndef PT_GZIP_H
#define PT_GZIP_H

#include <stddef.h>

#include "core/pt.h"

/* The codings portier can produce, in the server's order of preference (best first). */
enum pt_coding { PT_CODING_BR, PT_CODING_ZSTD, PT_CODING_GZIP, PT_NCODINGS, PT_CODING_NONE = -1 };

/* The name of <coding> as it goes in Content-Encoding ("br", "zstd", "gzip"). */
const char *pt_coding_name(enum pt_coding coding);

/*
 * Chooses the coding for a client whose Accept-Encoding value is <ae> (ae.p NULL: no such
 * header) among the codings whose bit (1 << coding) is set in <offered>.  A coding the
 * client lists with a q-value above 0 is acceptable, with that weight; one it does not list
 * takes the weight of "*" if "*" is listed; "x-gzip" is gzip; "q=0" refuses.  The highest
 * weight wins, ties go to the server's order (enum pt_coding).  Elements that do not parse
 * are ignored.  No header, an empty one, or nothing acceptable: PT_CODING_NONE (identity).
 */
enum pt_coding pt_coding_negotiate(struct pt_str ae, unsigned offered);

/* A streaming compressor of one response. */
struct pt_encoder;

/* The bit mask of the codings this build can produce (gzip always; br, zstd when built). */
unsigned pt_encoder_available(void);

/* Creates a compressor for <coding> at <level> (the coding's own scale; out of range is
 * clamped).  NULL when out of memory. */
struct pt_encoder *pt_encoder_new(enum pt_coding coding, int level);

/*
 * Compresses <len> bytes at <in>.  <mode>: PT_ENC_MORE (more input follows), PT_ENC_FLUSH
 * (make everything so far decodable: server-sent events), PT_ENC_END (this is the end).
 * Output goes to <emit>(<arg>, bytes, n) in pieces of at most the encoder's buffer; emit
 * returns PT_OK or PT_ERROR, which stops and is returned.  Returns PT_OK or PT_ERROR.
 */
enum pt_enc_mode { PT_ENC_MORE, PT_ENC_FLUSH, PT_ENC_END };
int pt_encoder_write(struct pt_encoder *e, const char *in, size_t len, enum pt_enc_mode mode,
                     int (*emit)(void *arg, const char *out, size_t n), void *arg);

/* Hands back <e> (NULL allowed) after a stream that ended (PT_ENC_END written): it may be
 * kept for the next pt_encoder_new() of the same coding and level. */
void pt_encoder_done(struct pt_encoder *e);

/* Frees <e> (NULL allowed): for an encoder in any state. */
void pt_encoder_free(struct pt_encoder *e);

/* The number of finished encoders this process keeps for reuse now (for tests). */
int pt_encoder_spares(void);

#endif
