/*
 * http_te.h: the Transfer-Encoding field parser of http_parse.c (RFC 9112 6.1 and 7).
 * Internal to the HTTP parsers; the policy it implements is stated in http_parse.h.
 *
 * Every Transfer-Encoding field line of a message is folded, in order, into one
 * struct pt_http_te_list (RFC 9110 5.3: several field lines are one comma-separated
 * list); the verdict is taken once, on the whole list.
 */
#ifndef PT_HTTP_TE_H
#define PT_HTTP_TE_H

#include "worker/http_parse.h"

/* What all the Transfer-Encoding fields of a message say, folded in order. */
struct pt_http_te_list {
    uint8_t codings[PT_HTTP_MAX_TE_CODINGS]; /* enum pt_http_coding, before chunked, in
                                                order, identity left out */
    unsigned ncodings;
    unsigned chunked : 1;       /* chunked seen */
    unsigned after_chunked : 1; /* a coding, chunked included, came after chunked */
    unsigned malformed : 1;     /* a list element is not a transfer-coding */
    unsigned unsupported : 1;   /* an unknown coding, or more than PT_HTTP_MAX_TE_CODINGS */
};

/*
 * Folds the Transfer-Encoding field value <v> into <te>, which the caller zeroes before
 * the first field of a message and passes again, unchanged, for each later one.  Never
 * fails: what is wrong is recorded in <te> for pt_http_te_verdict().  <te> keeps no
 * pointer into <v>.
 */
void pt_http_te_fold(struct pt_str v, struct pt_http_te_list *te);

/*
 * Returns the framing verdict on the folded list <te> of a message that has at least one
 * Transfer-Encoding field: PT_OK (chunked, once and last, with only known codings and at
 * most PT_HTTP_MAX_TE_CODINGS of them before it), 400 (an element that is not a
 * transfer-coding, no chunked, or chunked followed by any coding, itself included), or
 * 501 (an unknown coding, or too many; only when no 400 rule applies).
 */
int pt_http_te_verdict(const struct pt_http_te_list *te);

#endif
