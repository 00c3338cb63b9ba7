/*
 * test_cache_store.c: a cache's files (modules/cache/store.c): where a file lives, writing
 * one (commit, abort, the memory copy, copying an old body), reading it back from disk or
 * from memory, and the checks that turn a truncated or corrupt file into a miss.
 *
 * needs modules: cache
 *
 * Every test works in a directory of its own under /tmp, removed at the end.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <check.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check_main.h"
#include "core/pool.h"
#include "modules/cache/index.h"
#include "modules/cache/store.h"

/* nginx's example: levels=1:2 puts b7f54b2df7773722d382f4809d65029c under c/29/. */
static const uint8_t md5_a[CACHE_MD5_LEN] = {0xb7, 0xf5, 0x4b, 0x2d, 0xf7, 0x77, 0x37, 0x22,
                                             0xd3, 0x82, 0xf4, 0x80, 0x9d, 0x65, 0x02, 0x9c};
static const uint8_t md5_b[CACHE_MD5_LEN] = {0xc2, 0x9b, 0x7f, 0x54, 0xb2, 0xdf, 0x9d, 0x2c,
                                             0x7d, 0x8c, 0x4f, 0x3b, 0x2a, 0x1e, 0x0d, 0x9f};

#define KEY  "http://example.com/a"
#define VARY "Accept-Encoding"
#define HEAD "200 OK\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n"
#define BODY "0123456789"

static char dir[64];
static struct cache_path cp;
static struct pt_pool *pool;

static void setup(void)
{
    strcpy(dir, "/tmp/pt_cache_store.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    cp = (struct cache_path){.dir = dir, .nlevels = 2, .levels = {1, 2}};
    pool = pt_pool_create(4096);
    ck_assert_ptr_nonnull(pool);
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static void teardown(void)
{
    pt_pool_destroy(pool);
    nftw(dir, remove_one, 8, FTW_DEPTH | FTW_PHYS);
}

/* The header fields a writer is given (it sets the magic, the lengths and the CRC). */
static struct cache_file_header header(void)
{
    struct cache_file_header h;

    memset(&h, 0, sizeof(h));
    h.date = 1700000000;
    h.age = 7;
    h.last_modified = 1690000000;
    h.meta = (struct cache_meta){.valid = 1700000060, .swr = 10, .sie = 20, .fs_size = 0};
    memcpy(h.main_md5, md5_b, CACHE_MD5_LEN);
    return h;
}

/* Opens a writer of <md5>'s file with the test's key, Vary and head, keeping a memory copy
 * of up to <mem_max> bytes. */
static void open_writer(struct cache_writer *w, const uint8_t *md5, size_t mem_max)
{
    struct cache_file_header h = header();

    ck_assert_int_eq(cache_writer_open(w, &cp, md5, &h, KEY, VARY, HEAD, strlen(HEAD), mem_max),
                     PT_OK);
}

/* Writes <md5>'s file with the test's key, Vary, head and body.  Returns its size. */
static uint64_t write_file(const uint8_t *md5)
{
    struct cache_writer w;
    uint64_t size = 0;

    open_writer(&w, md5, 0);
    ck_assert_int_eq(cache_writer_append(&w, BODY, 4), PT_OK);
    ck_assert_int_eq(cache_writer_append(&w, &BODY[4], 6), PT_OK);
    ck_assert_int_eq(cache_writer_commit(&w, &size), PT_OK);
    return size;
}

static const char *path_of(const uint8_t *md5)
{
    static char buf[PATH_MAX];

    return cache_file_path(&cp, md5, buf, sizeof(buf));
}

/* XORs the byte at <off> of <md5>'s file with 0x20. */
static void flip_byte(const uint8_t *md5, off_t off)
{
    FILE *fp = fopen(path_of(md5), "r+b");
    int c;

    ck_assert_ptr_nonnull(fp);
    ck_assert_int_eq(fseeko(fp, off, SEEK_SET), 0);
    c = fgetc(fp);
    ck_assert_int_ne(c, EOF);
    ck_assert_int_eq(fseeko(fp, off, SEEK_SET), 0);
    ck_assert_int_eq(fputc(c ^ 0x20, fp), c ^ 0x20);
    ck_assert_int_eq(fclose(fp), 0);
}

static int exists(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0;
}

static int is_dir(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Asserts the header fields, key, Vary and head of the test's file in <f>. */
static void assert_test_entry(const struct cache_file *f)
{
    ck_assert_int_eq(f->h.date, 1700000000);
    ck_assert_int_eq(f->h.age, 7);
    ck_assert_int_eq(f->h.last_modified, 1690000000);
    ck_assert_int_eq(f->h.meta.valid, 1700000060);
    ck_assert_int_eq(f->h.meta.swr, 10);
    ck_assert_int_eq(f->h.meta.sie, 20);
    ck_assert_mem_eq(f->h.main_md5, md5_b, CACHE_MD5_LEN);
    ck_assert_uint_eq(f->h.key_len, strlen(KEY));
    ck_assert_uint_eq(f->h.vary_len, strlen(VARY));
    ck_assert_uint_eq(f->h.head_len, strlen(HEAD));
    ck_assert_uint_eq(f->h.header_len,
                      sizeof(struct cache_file_header) + strlen(KEY) + strlen(VARY) + strlen(HEAD));
    ck_assert_uint_eq(f->h.body_len, 10);
    ck_assert_str_eq(f->key, KEY);
    ck_assert_str_eq(f->vary, VARY);
    ck_assert_str_eq(f->head, HEAD);
}

/* Paths */

START_TEST(path_with_levels_1_2_takes_the_last_digit_then_the_two_before)
{
    char buf[PATH_MAX], want[PATH_MAX];

    snprintf(want, sizeof(want), "%s/c/29/b7f54b2df7773722d382f4809d65029c", dir);
    ck_assert_str_eq(cache_file_path(&cp, md5_a, buf, sizeof(buf)), want);
    snprintf(want, sizeof(want), "%s/f/d9/c29b7f54b2df9d2c7d8c4f3b2a1e0d9f", dir);
    ck_assert_str_eq(cache_file_path(&cp, md5_b, buf, sizeof(buf)), want);
}
END_TEST

START_TEST(path_without_levels_is_the_name_in_the_directory)
{
    char buf[PATH_MAX], want[PATH_MAX];

    cp.nlevels = 0;
    snprintf(want, sizeof(want), "%s/b7f54b2df7773722d382f4809d65029c", dir);
    ck_assert_str_eq(cache_file_path(&cp, md5_a, buf, sizeof(buf)), want);
}
END_TEST

START_TEST(writer_creates_the_directories_of_the_levels)
{
    char sub[PATH_MAX];

    write_file(md5_a);
    snprintf(sub, sizeof(sub), "%s/c", dir);
    ck_assert(is_dir(sub));
    snprintf(sub, sizeof(sub), "%s/c/29", dir);
    ck_assert(is_dir(sub));
    ck_assert(exists(path_of(md5_a)));
}
END_TEST

/* Writing and reading back */

START_TEST(committed_file_reads_back_its_header_key_vary_head_and_body)
{
    struct cache_file f;
    char body[11] = {0};
    uint64_t size = write_file(md5_a);

    ck_assert_int_eq(cache_file_open(&cp, md5_a, pool, &f), PT_OK);
    assert_test_entry(&f);
    ck_assert_uint_eq(size, f.h.header_len + 10);
    ck_assert_int_ge(f.fd, 0);
    ck_assert_int_eq(pread(f.fd, body, sizeof(body), f.h.header_len), 10);
    ck_assert_str_eq(body, BODY);
    ck_assert_ptr_null(f.mem_body);
    cache_file_close(&f);
    ck_assert_int_eq(f.fd, -1);
}
END_TEST

START_TEST(commit_renames_the_temporary_file_into_place)
{
    struct cache_writer w;
    char tmp[PATH_MAX];
    uint64_t size = 0;
    struct stat st;

    open_writer(&w, md5_a, 0);
    strcpy(tmp, w.tmp);
    ck_assert(exists(tmp));
    ck_assert(!exists(path_of(md5_a)));
    ck_assert_int_eq(cache_writer_append(&w, BODY, 10), PT_OK);
    ck_assert_int_eq(cache_writer_commit(&w, &size), PT_OK);
    ck_assert(!exists(tmp));
    ck_assert_int_eq(stat(path_of(md5_a), &st), 0);
    ck_assert_uint_eq((uint64_t)st.st_size, size);
    ck_assert_int_eq(w.fd, -1);
}
END_TEST

START_TEST(commit_replaces_an_older_file)
{
    struct cache_writer w;
    struct cache_file f;
    uint64_t size = 0;

    write_file(md5_a);
    open_writer(&w, md5_a, 0);
    ck_assert_int_eq(cache_writer_append(&w, "new", 3), PT_OK);
    ck_assert_int_eq(cache_writer_commit(&w, &size), PT_OK);
    ck_assert_int_eq(cache_file_open(&cp, md5_a, pool, &f), PT_OK);
    ck_assert_uint_eq(f.h.body_len, 3);
    cache_file_close(&f);
}
END_TEST

START_TEST(abort_removes_the_temporary_file)
{
    struct cache_writer w;
    char tmp[PATH_MAX];

    open_writer(&w, md5_a, 4096);
    strcpy(tmp, w.tmp);
    ck_assert_int_eq(cache_writer_append(&w, BODY, 10), PT_OK);
    cache_writer_abort(&w);
    ck_assert(!exists(tmp));
    ck_assert(!exists(path_of(md5_a)));
    ck_assert_int_eq(w.fd, -1);
    ck_assert_ptr_null(w.mem);
}
END_TEST

START_TEST(writer_copy_appends_a_body_read_from_another_file)
{
    struct cache_file old, f;
    struct cache_writer w;
    char body[6] = {0};
    uint64_t size = 0;

    write_file(md5_a);
    ck_assert_int_eq(cache_file_open(&cp, md5_a, pool, &old), PT_OK);
    open_writer(&w, md5_b, 0);
    ck_assert_int_eq(cache_writer_copy(&w, old.fd, (off_t)old.h.header_len + 2, 5), PT_OK);
    ck_assert_int_eq(cache_writer_commit(&w, &size), PT_OK);
    cache_file_close(&old);
    ck_assert_int_eq(cache_file_open(&cp, md5_b, pool, &f), PT_OK);
    ck_assert_uint_eq(f.h.body_len, 5);
    ck_assert_int_eq(pread(f.fd, body, sizeof(body), f.h.header_len), 5);
    ck_assert_str_eq(body, "23456");
    cache_file_close(&f);
}
END_TEST

START_TEST(writer_copy_copies_a_body_longer_than_its_buffer)
{
    enum { LEN = 40000 }; /* more than two rounds of the writer's 16 KiB buffer */
    static char body[LEN], got[LEN];
    struct cache_file old, f;
    struct cache_writer w;
    uint64_t size = 0;

    for (int i = 0; i < LEN; i++)
        body[i] = (char)(i * 7 + i / 251);
    open_writer(&w, md5_a, 0);
    ck_assert_int_eq(cache_writer_append(&w, body, LEN), PT_OK);
    ck_assert_int_eq(cache_writer_commit(&w, &size), PT_OK);
    ck_assert_int_eq(cache_file_open(&cp, md5_a, pool, &old), PT_OK);
    open_writer(&w, md5_b, 0);
    ck_assert_int_eq(cache_writer_copy(&w, old.fd, (off_t)old.h.header_len, LEN), PT_OK);
    ck_assert_int_eq(cache_writer_commit(&w, &size), PT_OK);
    cache_file_close(&old);
    ck_assert_int_eq(cache_file_open(&cp, md5_b, pool, &f), PT_OK);
    ck_assert_uint_eq(f.h.body_len, LEN);
    ck_assert_int_eq(pread(f.fd, got, LEN, f.h.header_len), LEN);
    ck_assert_mem_eq(got, body, LEN);
    cache_file_close(&f);
}
END_TEST

START_TEST(writer_copy_past_the_end_of_the_file_fails_the_writer)
{
    struct cache_file old;
    struct cache_writer w;
    uint64_t size = 0;

    write_file(md5_a);
    ck_assert_int_eq(cache_file_open(&cp, md5_a, pool, &old), PT_OK);
    open_writer(&w, md5_b, 0);
    ck_assert_int_eq(cache_writer_copy(&w, old.fd, (off_t)old.h.header_len + 5, 6), PT_ERROR);
    ck_assert_int_eq(cache_writer_commit(&w, &size), PT_ERROR);
    ck_assert(!exists(path_of(md5_b)));
    cache_file_close(&old);
}
END_TEST

/* Files that are a miss */

START_TEST(missing_file_is_declined)
{
    struct cache_file f;

    ck_assert_int_eq(cache_file_open(&cp, md5_a, pool, &f), PT_DECLINED);
}
END_TEST

START_TEST(file_truncated_by_one_byte_is_an_error)
{
    struct cache_file f;
    uint64_t size = write_file(md5_a);

    ck_assert_int_eq(truncate(path_of(md5_a), (off_t)size - 1), 0);
    ck_assert_int_eq(cache_file_open(&cp, md5_a, pool, &f), PT_ERROR);
    ck_assert_int_eq(f.fd, -1);
}
END_TEST

START_TEST(file_with_a_flipped_byte_in_the_key_is_an_error)
{
    struct cache_file f;

    write_file(md5_a);
    flip_byte(md5_a, (off_t)sizeof(struct cache_file_header));
    ck_assert_int_eq(cache_file_open(&cp, md5_a, pool, &f), PT_ERROR);
}
END_TEST

START_TEST(file_with_a_flipped_byte_in_the_head_is_an_error)
{
    struct cache_file f;
    uint64_t size = write_file(md5_a);

    flip_byte(md5_a, (off_t)size - 10 - 1); /* the head's last byte, before the body */
    ck_assert_int_eq(cache_file_open(&cp, md5_a, pool, &f), PT_ERROR);
}
END_TEST

START_TEST(file_with_a_changed_header_field_is_an_error)
{
    struct cache_file f;

    write_file(md5_a);
    flip_byte(md5_a, (off_t)offsetof(struct cache_file_header, date));
    ck_assert_int_eq(cache_file_open(&cp, md5_a, pool, &f), PT_ERROR);
}
END_TEST

/* The memory copy */

START_TEST(memory_copy_parses_to_the_same_entry)
{
    struct cache_writer w;
    struct cache_file f;
    uint64_t size = 0;

    open_writer(&w, md5_a, 4096);
    ck_assert_int_eq(cache_writer_append(&w, BODY, 10), PT_OK);
    ck_assert_int_eq(cache_writer_commit(&w, &size), PT_OK);
    ck_assert_ptr_nonnull(w.mem);
    ck_assert_uint_eq(w.mem_len, size);
    ck_assert_int_eq(cache_file_parse(w.mem, w.mem_len, pool, &f), PT_OK);
    assert_test_entry(&f);
    ck_assert_int_eq(f.fd, -1);
    ck_assert_ptr_eq(f.mem_body, w.mem + f.h.header_len);
    ck_assert_mem_eq(f.mem_body, BODY, 10);
    free(w.mem);
}
END_TEST

START_TEST(memory_copy_is_the_file_byte_for_byte)
{
    struct cache_writer w;
    uint64_t size = 0;
    char *disk;
    FILE *fp;

    open_writer(&w, md5_a, 4096);
    ck_assert_int_eq(cache_writer_append(&w, BODY, 10), PT_OK);
    ck_assert_int_eq(cache_writer_commit(&w, &size), PT_OK);
    disk = malloc(size);
    fp = fopen(path_of(md5_a), "rb");
    ck_assert_ptr_nonnull(fp);
    ck_assert_uint_eq(fread(disk, 1, size, fp), size);
    fclose(fp);
    ck_assert_mem_eq(w.mem, disk, size);
    free(disk);
    free(w.mem);
}
END_TEST

START_TEST(memory_copy_cut_short_does_not_parse)
{
    struct cache_writer w;
    struct cache_file f;
    uint64_t size = 0;

    open_writer(&w, md5_a, 4096);
    ck_assert_int_eq(cache_writer_append(&w, BODY, 10), PT_OK);
    ck_assert_int_eq(cache_writer_commit(&w, &size), PT_OK);
    ck_assert_int_eq(cache_file_parse(w.mem, w.mem_len - 1, pool, &f), PT_ERROR);
    free(w.mem);
}
END_TEST

START_TEST(body_that_fills_mem_max_exactly_keeps_the_copy)
{
    size_t header_len =
        sizeof(struct cache_file_header) + strlen(KEY) + strlen(VARY) + strlen(HEAD);
    struct cache_writer w;
    uint64_t size = 0;

    open_writer(&w, md5_a, header_len + 10);
    ck_assert_int_eq(cache_writer_append(&w, BODY, 10), PT_OK);
    ck_assert_int_eq(cache_writer_commit(&w, &size), PT_OK);
    ck_assert_ptr_nonnull(w.mem);
    ck_assert_uint_eq(w.mem_len, header_len + 10);
    free(w.mem);
}
END_TEST

START_TEST(body_larger_than_mem_max_drops_the_copy)
{
    size_t header_len =
        sizeof(struct cache_file_header) + strlen(KEY) + strlen(VARY) + strlen(HEAD);
    struct cache_writer w;
    uint64_t size = 0;

    open_writer(&w, md5_a, header_len + 9);
    ck_assert_int_eq(cache_writer_append(&w, BODY, 10), PT_OK);
    ck_assert_int_eq(cache_writer_commit(&w, &size), PT_OK);
    ck_assert_ptr_null(w.mem);
    ck_assert_uint_eq(size, header_len + 10); /* the file itself is whole */
}
END_TEST

/* The loader's probe */

START_TEST(probe_returns_the_key_and_vary_of_a_sound_file)
{
    struct cache_file_header h;
    char key[256], vary[CACHE_VARY_MAX];

    write_file(md5_a);
    ck_assert_int_eq(cache_file_probe(path_of(md5_a), &h, key, sizeof(key), vary), PT_OK);
    ck_assert_str_eq(key, KEY);
    ck_assert_str_eq(vary, VARY);
    ck_assert_uint_eq(h.body_len, 10);
    ck_assert_int_eq(h.date, 1700000000);
}
END_TEST

START_TEST(probe_of_a_corrupt_file_is_an_error)
{
    struct cache_file_header h;
    char key[256], vary[CACHE_VARY_MAX];

    write_file(md5_a);
    flip_byte(md5_a, (off_t)sizeof(struct cache_file_header));
    ck_assert_int_eq(cache_file_probe(path_of(md5_a), &h, key, sizeof(key), vary), PT_ERROR);
}
END_TEST

START_TEST(probe_of_a_key_longer_than_the_room_is_an_error)
{
    struct cache_file_header h;
    char key[8], vary[CACHE_VARY_MAX];

    write_file(md5_a);
    ck_assert_int_eq(cache_file_probe(path_of(md5_a), &h, key, sizeof(key), vary), PT_ERROR);
}
END_TEST

Suite *pt_test_suite(void)
{
    Suite *s = suite_create("cache_store");
    TCase *path = tcase_create("path"), *write = tcase_create("write");
    TCase *miss = tcase_create("miss"), *mem = tcase_create("memory");
    TCase *probe = tcase_create("probe");

    tcase_add_checked_fixture(path, setup, teardown);
    tcase_add_test(path, path_with_levels_1_2_takes_the_last_digit_then_the_two_before);
    tcase_add_test(path, path_without_levels_is_the_name_in_the_directory);
    tcase_add_test(path, writer_creates_the_directories_of_the_levels);
    suite_add_tcase(s, path);

    tcase_add_checked_fixture(write, setup, teardown);
    tcase_add_test(write, committed_file_reads_back_its_header_key_vary_head_and_body);
    tcase_add_test(write, commit_renames_the_temporary_file_into_place);
    tcase_add_test(write, commit_replaces_an_older_file);
    tcase_add_test(write, abort_removes_the_temporary_file);
    tcase_add_test(write, writer_copy_appends_a_body_read_from_another_file);
    tcase_add_test(write, writer_copy_copies_a_body_longer_than_its_buffer);
    tcase_add_test(write, writer_copy_past_the_end_of_the_file_fails_the_writer);
    suite_add_tcase(s, write);

    tcase_add_checked_fixture(miss, setup, teardown);
    tcase_add_test(miss, missing_file_is_declined);
    tcase_add_test(miss, file_truncated_by_one_byte_is_an_error);
    tcase_add_test(miss, file_with_a_flipped_byte_in_the_key_is_an_error);
    tcase_add_test(miss, file_with_a_flipped_byte_in_the_head_is_an_error);
    tcase_add_test(miss, file_with_a_changed_header_field_is_an_error);
    suite_add_tcase(s, miss);

    tcase_add_checked_fixture(mem, setup, teardown);
    tcase_add_test(mem, memory_copy_parses_to_the_same_entry);
    tcase_add_test(mem, memory_copy_is_the_file_byte_for_byte);
    tcase_add_test(mem, memory_copy_cut_short_does_not_parse);
    tcase_add_test(mem, body_that_fills_mem_max_exactly_keeps_the_copy);
    tcase_add_test(mem, body_larger_than_mem_max_drops_the_copy);
    suite_add_tcase(s, mem);

    tcase_add_checked_fixture(probe, setup, teardown);
    tcase_add_test(probe, probe_returns_the_key_and_vary_of_a_sound_file);
    tcase_add_test(probe, probe_of_a_corrupt_file_is_an_error);
    tcase_add_test(probe, probe_of_a_key_longer_than_the_room_is_an_error);
    suite_add_tcase(s, probe);
    return s;
}
