/*
 * split_clients.h: what the split_clients module offers besides its directive: nginx's
 * hash, so that tests can pin it to nginx's values.
 */
#ifndef PT_SPLIT_CLIENTS_H
#define PT_SPLIT_CLIENTS_H

#include <stddef.h>
#include <stdint.h>

/* MurmurHash2 of <data>/<len> with seed 0, as nginx's ngx_murmur_hash2 computes it (bytes
 * read little-endian, whatever the host's order). */
uint32_t pt_murmur_hash2(const char *data, size_t len);

#endif
