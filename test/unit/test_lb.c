/*
 * test_lb.c: the balancing algorithms of upstream groups (modules/upstream/lb.h) on fixed inputs.
 * The peers' shared state is a plain malloc'd array, as the "upstream" zone would hold it;
 * several "workers" are several peer arrays pointing at the same shared entries.
 */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "modules/upstream/lb.h"

#define MAXP    16
#define WORKERS 4
#define NOW     100000 /* ms */

static struct pt_peer_shared *shared; /* the "zone" */
static struct pt_peer peers[WORKERS][MAXP];
static struct pt_lb lb;
static uint64_t rng;

/* <n> peers "10.0.0.<i>:80" of weights <w> (1 when NULL), shared by every worker. */
static void make_peers(int n, const int *w)
{
    free(shared);
    shared = calloc(MAXP, sizeof(*shared));
    memset(peers, 0, sizeof(peers));
    for (int k = 0; k < WORKERS; k++) {
        for (int i = 0; i < n; i++) {
            struct pt_peer *p = &peers[k][i];
            snprintf(p->name, sizeof(p->name), "10.0.0.%d:80", i + 1);
            p->weight = w ? w[i] : 1;
            p->max_fails = 1;
            p->fail_timeout = 10000;
            p->shared = &shared[i];
        }
    }
    free(lb.points);
    memset(&lb, 0, sizeof(lb));
    rng = 42;
}

static void setup(void)
{
    make_peers(3, NULL);
}

static void teardown(void)
{
    free(shared);
    shared = NULL;
    free(lb.points);
    lb.points = NULL;
}

/* A choice made by worker <w> among its first <n> peers. */
static struct pt_lb_pick pick_of(int w, int n)
{
    return (struct pt_lb_pick){.peers = peers[w], .npeers = n, .now = NOW, .rng = &rng};
}

/* Index of the peer chosen by worker <w> among <n> (-1 for none). */
static int choose_by(int w, int n)
{
    struct pt_lb_pick k = pick_of(w, n);
    struct pt_peer *p = pt_lb_choose(&lb, &k);

    return p ? (int)(p - peers[w]) : -1;
}

static int choose(int n)
{
    return choose_by(0, n);
}

/* Index chosen for the hash key <key> among <n> peers. */
static int choose_key(int n, const char *key)
{
    struct pt_lb_pick k = pick_of(0, n);
    struct pt_peer *p;

    k.key = (struct pt_str){key, strlen(key)};
    p = pt_lb_choose(&lb, &k);
    return p ? (int)(p - peers[0]) : -1;
}

/* Index chosen by ip_hash for the IPv4 client <ip> among <n> peers. */
static int choose_ip(int n, const char *ip)
{
    struct sockaddr_in sin = {.sin_family = AF_INET};
    struct pt_lb_pick k = pick_of(0, n);
    uint8_t bytes[16];
    struct pt_peer *p;

    inet_pton(AF_INET, ip, &sin.sin_addr);
    k.addrlen = pt_lb_ip_bytes((struct sockaddr *)&sin, bytes);
    k.addr = bytes;
    p = pt_lb_choose(&lb, &k);
    return p ? (int)(p - peers[0]) : -1;
}

static void build_ring(int n)
{
    free(lb.points);
    lb.method = PT_LB_HASH;
    lb.consistent = 1;
    lb.points = malloc(pt_lb_ring_size(peers[0], n) * sizeof(*lb.points));
    lb.npoints = pt_lb_ring_build(lb.points, peers[0], n);
}

/* --- round robin --- */

START_TEST(smooth_round_robin_for_weights_5_1_1_is_a_a_b_a_c_a_a)
{
    const int w[] = {5, 1, 1}, want[] = {0, 0, 1, 0, 2, 0, 0};

    make_peers(3, w);
    /* Twice round: the sequence repeats, spread, never a burst of five a's. */
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < 7; i++)
            ck_assert_int_eq(choose(3), want[i]);
}
END_TEST

START_TEST(round_robin_is_one_sequence_for_all_workers)
{
    const int w[] = {5, 1, 1}, want[] = {0, 0, 1, 0, 2, 0, 0};

    make_peers(3, w);
    /* Workers taking turns step the same shared weights: together, the same sequence. */
    for (int i = 0; i < 7; i++)
        ck_assert_int_eq(choose_by(i % WORKERS, 3), want[i]);
}
END_TEST

START_TEST(round_robin_skips_tried_peers)
{
    struct pt_lb_pick k = pick_of(0, 3);

    k.tried = 1u << 0 | 1u << 2;
    for (int i = 0; i < 5; i++)
        ck_assert_ptr_eq(pt_lb_choose(&lb, &k), &peers[0][1]);
    k.tried = 7;
    ck_assert_ptr_null(pt_lb_choose(&lb, &k));
}
END_TEST

START_TEST(failed_peer_is_skipped_until_its_down_time_ends)
{
    shared[1].down_until_ms = NOW + 1;
    for (int i = 0; i < 6; i++)
        ck_assert_int_ne(choose(3), 1);
    shared[1].down_until_ms = NOW;
    int seen = 0;
    for (int i = 0; i < 3; i++)
        seen |= 1 << choose(3);
    ck_assert_int_eq(seen, 7);
}
END_TEST

START_TEST(backup_is_used_only_when_every_primary_is_down)
{
    peers[0][2].backup = 1;
    for (int i = 0; i < 10; i++)
        ck_assert_int_ne(choose(3), 2);
    peers[0][0].down = 1;
    ck_assert_int_eq(choose(3), 1);
    shared[1].down_until_ms = NOW + 5000; /* failed */
    ck_assert_int_eq(choose(3), 2);
    ck_assert_int_eq(choose(3), 2);
    shared[1].down_until_ms = 0;
    ck_assert_int_eq(choose(3), 1);
}
END_TEST

START_TEST(backup_is_used_by_least_conn_too_when_primaries_are_down)
{
    lb.method = PT_LB_LEAST_CONN;
    peers[0][2].backup = 1;
    shared[2].conns = 0;
    shared[0].conns = shared[1].conns = 50;
    ck_assert_int_ne(choose(3), 2);
    peers[0][0].down = peers[0][1].down = 1;
    ck_assert_int_eq(choose(3), 2);
}
END_TEST

START_TEST(max_conns_is_respected_by_the_shared_count)
{
    peers[0][0].max_conns = 2;
    peers[0][1].max_conns = 1;
    shared[0].conns = 2; /* say, one connection from each of two workers */
    for (int i = 0; i < 6; i++)
        ck_assert_int_ne(choose(3), 0);
    shared[1].conns = 1;
    for (int i = 0; i < 6; i++)
        ck_assert_int_eq(choose(3), 2);
    peers[0][2].max_conns = 3;
    shared[2].conns = 3;
    ck_assert_int_eq(choose(3), -1);
    shared[0].conns = 1;
    ck_assert_int_eq(choose(3), 0);
}
END_TEST

START_TEST(one_peer_needs_no_shared_state)
{
    struct pt_peer one = {.weight = 1, .max_fails = 1};
    struct pt_lb_pick k = {.peers = &one, .npeers = 1, .now = NOW};

    ck_assert_ptr_eq(pt_lb_choose(&lb, &k), &one);
    k.tried = 1;
    ck_assert_ptr_null(pt_lb_choose(&lb, &k));
}
END_TEST

/* --- slow start --- */

START_TEST(slow_start_ramps_the_weight_from_zero_over_its_time)
{
    struct pt_peer *p = &peers[0][0];

    p->weight = 10;
    p->slow_start = 10000;
    shared[0].recovered_ms = NOW;
    ck_assert_int_eq(pt_lb_weight(p, NOW - 1), 1); /* still down: the least weight */
    ck_assert_int_eq(pt_lb_weight(p, NOW), 1);
    ck_assert_int_eq(pt_lb_weight(p, NOW + 2500), 10 * PT_LB_SCALE / 4);
    ck_assert_int_eq(pt_lb_weight(p, NOW + 5000), 10 * PT_LB_SCALE / 2);
    ck_assert_int_eq(pt_lb_weight(p, NOW + 10000), 10 * PT_LB_SCALE);
    ck_assert_int_eq(pt_lb_weight(p, NOW + 99999), 10 * PT_LB_SCALE);
}
END_TEST

START_TEST(slow_start_peer_gets_its_share_of_requests)
{
    int count[2] = {0, 0};

    /* A came back 2.5s ago with slow_start=10s: a quarter of its weight, so 1 in 5. */
    peers[0][0].slow_start = 10000;
    shared[0].recovered_ms = NOW - 2500;
    for (int i = 0; i < 100; i++)
        count[choose(2)]++;
    ck_assert_int_eq(count[0], 20);
    ck_assert_int_eq(count[1], 80);
}
END_TEST

START_TEST(without_slow_start_a_recovered_peer_takes_full_weight)
{
    int count[2] = {0, 0};

    shared[0].recovered_ms = NOW - 1;
    for (int i = 0; i < 100; i++)
        count[choose(2)]++;
    ck_assert_int_eq(count[0], 50);
}
END_TEST

/* --- least_conn --- */

START_TEST(least_conn_picks_by_the_count_of_all_workers)
{
    lb.method = PT_LB_LEAST_CONN;
    /* Worker 0 holds 2 connections to A, worker 1 one to B, worker 2 one to A.  Worker 3
     * holds none: alone it would see all equal; the shared counts send it to C. */
    shared[0].conns = 3;
    shared[1].conns = 1;
    shared[2].conns = 0;
    ck_assert_int_eq(choose_by(3, 3), 2);
    shared[2].conns++;
    /* B and C tie at 1: round robin among them, never A. */
    ck_assert_int_eq(choose_by(1, 3), 1);
    ck_assert_int_eq(choose_by(2, 3), 2);
}
END_TEST

START_TEST(least_conn_spreads_connections_of_four_workers_evenly)
{
    lb.method = PT_LB_LEAST_CONN;
    /* Each worker in turn opens a long connection where least_conn says. */
    for (int i = 0; i < 12; i++)
        shared[choose_by(i % WORKERS, 3)].conns++;
    ck_assert_int_eq(shared[0].conns, 4);
    ck_assert_int_eq(shared[1].conns, 4);
    ck_assert_int_eq(shared[2].conns, 4);
}
END_TEST

START_TEST(least_conn_scales_connections_by_weight)
{
    const int w[] = {3, 1};

    make_peers(2, w);
    lb.method = PT_LB_LEAST_CONN;
    shared[0].conns = 2; /* 2/3 */
    shared[1].conns = 1; /* 1/1 */
    ck_assert_int_eq(choose(2), 0);
    shared[0].conns = 4; /* 4/3 */
    ck_assert_int_eq(choose(2), 1);
}
END_TEST

/* --- ip_hash --- */

START_TEST(ip_hash_sends_one_24_to_one_server_as_nginx)
{
    lb.method = PT_LB_IP_HASH;
    /* nginx: hash = 89; hash = (hash * 113 + octet) % 6271 over 10, 1, 2 -> 2680; 2680 % 3. */
    for (int i = 0; i < 5; i++) {
        ck_assert_int_eq(choose_ip(3, "10.1.2.3"), 2680 % 3);
        ck_assert_int_eq(choose_ip(3, "10.1.2.250"), 2680 % 3);
    }
}
END_TEST

START_TEST(ip_hash_sends_different_24s_to_different_servers)
{
    int seen = 0;
    char ip[32];

    lb.method = PT_LB_IP_HASH;
    for (int net = 0; net < 30; net++) {
        snprintf(ip, sizeof(ip), "10.1.%d.1", net);
        seen |= 1 << choose_ip(3, ip);
    }
    ck_assert_int_eq(seen, 7);
}
END_TEST

START_TEST(ip_hash_moves_only_the_clients_of_a_down_server)
{
    int before[100];
    char ip[32];

    lb.method = PT_LB_IP_HASH;
    for (int net = 0; net < 100; net++) {
        snprintf(ip, sizeof(ip), "192.168.%d.7", net);
        before[net] = choose_ip(3, ip);
    }
    peers[0][1].down = 1;
    for (int net = 0; net < 100; net++) {
        snprintf(ip, sizeof(ip), "192.168.%d.7", net);
        if (before[net] == 1)
            ck_assert_int_ne(choose_ip(3, ip), 1);
        else
            ck_assert_int_eq(choose_ip(3, ip), before[net]);
    }
}
END_TEST

START_TEST(ip_bytes_are_the_24_of_ipv4_and_all_of_ipv6)
{
    struct sockaddr_in sin = {.sin_family = AF_INET};
    struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6};
    uint8_t a[16], b[16];

    inet_pton(AF_INET, "10.1.2.3", &sin.sin_addr);
    ck_assert_uint_eq(pt_lb_ip_bytes((struct sockaddr *)&sin, a), 3);
    ck_assert_mem_eq(a, "\x0a\x01\x02", 3);
    inet_pton(AF_INET6, "::ffff:10.1.2.99", &sin6.sin6_addr);
    ck_assert_uint_eq(pt_lb_ip_bytes((struct sockaddr *)&sin6, b), 3);
    ck_assert_mem_eq(b, a, 3);
    inet_pton(AF_INET6, "2001:db8::1", &sin6.sin6_addr);
    ck_assert_uint_eq(pt_lb_ip_bytes((struct sockaddr *)&sin6, b), 16);
    ck_assert_mem_eq(b, &sin6.sin6_addr, 16);
}
END_TEST

/* --- health checks and runtime control --- */

/* How many of 30 choices of worker 0 among 3 peers went to each. */
static void spread(int counts[3])
{
    counts[0] = counts[1] = counts[2] = 0;
    for (int i = 0; i < 30; i++) {
        int c = choose(3);
        ck_assert_int_ge(c, 0);
        counts[c]++;
    }
}

START_TEST(a_peer_down_by_its_checks_takes_nothing)
{
    int n[3];

    for (int k = 0; k < WORKERS; k++)
        peers[k][1].checked = 1;
    shared[1].health = PT_HEALTH_DOWN;
    spread(n);
    ck_assert_int_eq(n[1], 0);
    ck_assert_int_eq(n[0] + n[2], 30);
    shared[1].health = PT_HEALTH_UP;
    spread(n);
    ck_assert_int_eq(n[1], 10);
}
END_TEST

START_TEST(check_results_do_not_count_when_the_group_has_no_checks)
{
    shared[1].health = PT_HEALTH_DOWN; /* left over from a configuration that had checks */
    ck_assert(pt_lb_usable(&peers[0][1], NOW));
}
END_TEST

START_TEST(mandatory_keeps_an_unchecked_peer_out_until_its_first_result)
{
    peers[0][2].checked = 1;
    ck_assert(pt_lb_usable(&peers[0][2], NOW));
    peers[0][2].mandatory = 1;
    ck_assert(!pt_lb_usable(&peers[0][2], NOW));
    shared[2].health = PT_HEALTH_UP;
    ck_assert(pt_lb_usable(&peers[0][2], NOW));
}
END_TEST

START_TEST(drained_and_api_down_peers_take_nothing_in_any_worker)
{
    shared[0].admin = PT_ADMIN_DRAIN;
    shared[2].admin = PT_ADMIN_DOWN;
    for (int w = 0; w < WORKERS; w++)
        for (int i = 0; i < 5; i++)
            ck_assert_int_eq(choose_by(w, 3), 1);
}
END_TEST

START_TEST(api_up_overrides_a_configured_down)
{
    peers[0][0].down = 1;
    ck_assert(!pt_lb_usable(&peers[0][0], NOW));
    shared[0].admin = PT_ADMIN_UP;
    ck_assert(pt_lb_usable(&peers[0][0], NOW));
    shared[0].admin = PT_ADMIN_NONE;
    ck_assert(!pt_lb_usable(&peers[0][0], NOW));
}
END_TEST

START_TEST(a_weight_set_at_run_time_replaces_the_configured_one)
{
    int n[3];

    shared[2].admin_weight = 4;
    ck_assert_int_eq(pt_lb_weight(&peers[0][2], NOW), 4 * PT_LB_SCALE);
    spread(n);
    ck_assert_int_eq(n[0], 5);
    ck_assert_int_eq(n[1], 5);
    ck_assert_int_eq(n[2], 20);
    shared[2].admin_weight = 0;
    ck_assert_int_eq(pt_lb_weight(&peers[0][2], NOW), PT_LB_SCALE);
}
END_TEST

/* --- hash --- */

START_TEST(crc32_is_the_ieee_one)
{
    ck_assert_uint_eq(pt_lb_crc32("123456789", 9), 0xcbf43926u);
    ck_assert_uint_eq(pt_lb_crc32("", 0), 0);
}
END_TEST

START_TEST(hash_without_consistent_is_stable_and_spread)
{
    char key[32];
    int seen = 0, first[20];

    lb.method = PT_LB_HASH;
    for (int i = 0; i < 20; i++) {
        snprintf(key, sizeof(key), "user%d", i);
        first[i] = choose_key(3, key);
        seen |= 1 << first[i];
    }
    ck_assert_int_eq(seen, 7);
    /* Again, interleaved: no state moves a key. */
    for (int round = 0; round < 3; round++)
        for (int i = 0; i < 20; i++) {
            snprintf(key, sizeof(key), "user%d", i);
            ck_assert_int_eq(choose_key(3, key), first[i]);
        }
}
END_TEST

START_TEST(hash_without_consistent_is_crc32_modulo_the_weight)
{
    lb.method = PT_LB_HASH;
    /* nginx (Cache::Memcached): ((crc32(KEY) >> 16) & 0x7fff) % total weight. */
    ck_assert_int_eq(choose_key(3, "abc"), (int)(((pt_lb_crc32("abc", 3) >> 16) & 0x7fff) % 3));
}
END_TEST

START_TEST(hash_falls_back_to_another_server_when_its_own_is_down)
{
    int own;

    lb.method = PT_LB_HASH;
    own = choose_key(3, "alice");
    peers[0][own].down = 1;
    ck_assert_int_ne(choose_key(3, "alice"), own);
    ck_assert_int_ne(choose_key(3, "alice"), -1);
}
END_TEST

/* Server name chosen for key "key-<i>" on the ring of the first <n> peers. */
static const char *ring_server(int n, int i)
{
    char key[32];
    int p;

    snprintf(key, sizeof(key), "key-%d", i);
    p = choose_key(n, key);
    return p < 0 ? "-" : peers[0][p].name;
}

START_TEST(ketama_removing_one_of_10_servers_moves_about_a_tenth_of_keys)
{
    static char before[10000][64];
    int moved = 0;

    make_peers(10, NULL);
    build_ring(10);
    for (int i = 0; i < 10000; i++)
        strcpy(before[i], ring_server(10, i));
    /* Remove 10.0.0.5: the peers after it move up one place. */
    for (int i = 4; i < 9; i++)
        peers[0][i] = peers[0][i + 1];
    build_ring(9);
    for (int i = 0; i < 10000; i++) {
        if (strcmp(before[i], ring_server(9, i)) == 0)
            continue;
        moved++;
        /* Only the removed server's keys move. */
        ck_assert_str_eq(before[i], "10.0.0.5:80");
    }
    ck_assert_int_ge(moved, 500);
    ck_assert_int_le(moved, 1500);
}
END_TEST

START_TEST(ketama_down_server_keys_go_where_removal_would_send_them)
{
    static char removed[10000][64];

    make_peers(10, NULL);
    for (int i = 3; i < 9; i++)
        peers[0][i] = peers[0][i + 1];
    build_ring(9); /* without 10.0.0.4 */
    for (int i = 0; i < 10000; i++)
        strcpy(removed[i], ring_server(9, i));
    make_peers(10, NULL);
    build_ring(10);
    peers[0][3].down = 1;
    for (int i = 0; i < 10000; i++)
        ck_assert_str_eq(ring_server(10, i), removed[i]);
}
END_TEST

START_TEST(ketama_ring_has_160_points_per_weight)
{
    const int w[] = {1, 2, 3};

    make_peers(3, w);
    peers[0][2].backup = 1; /* backups are not on the ring */
    ck_assert_uint_eq(pt_lb_ring_size(peers[0], 3), 160 * 3);
}
END_TEST

/* --- random --- */

START_TEST(random_two_always_prefers_the_less_loaded)
{
    lb.method = PT_LB_RANDOM;
    lb.two = 1;
    shared[0].conns = 5;
    shared[1].conns = 0;
    for (int i = 0; i < 200; i++)
        ck_assert_int_eq(choose(2), 1);
}
END_TEST

START_TEST(random_two_never_picks_the_most_loaded_of_three)
{
    int count[3] = {0, 0, 0};

    lb.method = PT_LB_RANDOM;
    lb.two = 1;
    shared[0].conns = 9;
    shared[1].conns = 5;
    shared[2].conns = 0;
    for (int i = 0; i < 3000; i++)
        count[choose(3)]++;
    /* Of two different ones, A always loses; C wins whenever drawn (2 pairs of 3). */
    ck_assert_int_eq(count[0], 0);
    ck_assert_int_gt(count[2], count[1]);
}
END_TEST

START_TEST(random_follows_the_weights)
{
    const int w[] = {3, 1};
    int count[2] = {0, 0};

    make_peers(2, w);
    lb.method = PT_LB_RANDOM;
    for (int i = 0; i < 4000; i++)
        count[choose(2)]++;
    ck_assert_int_ge(count[0], 2800);
    ck_assert_int_le(count[0], 3200);
}
END_TEST

START_TEST(random_never_picks_an_unusable_peer)
{
    lb.method = PT_LB_RANDOM;
    peers[0][0].down = 1;
    shared[2].down_until_ms = NOW + 1;
    for (int i = 0; i < 100; i++)
        ck_assert_int_eq(choose(3), 1);
}
END_TEST

Suite *pt_test_suite(void)
{
    Suite *s = suite_create("lb");
    TCase *rr = tcase_create("round_robin"), *lc = tcase_create("least_conn");
    TCase *ip = tcase_create("ip_hash"), *hash = tcase_create("hash");
    TCase *rnd = tcase_create("random"), *hc = tcase_create("health");

    tcase_add_checked_fixture(rr, setup, teardown);
    tcase_add_test(rr, smooth_round_robin_for_weights_5_1_1_is_a_a_b_a_c_a_a);
    tcase_add_test(rr, round_robin_is_one_sequence_for_all_workers);
    tcase_add_test(rr, round_robin_skips_tried_peers);
    tcase_add_test(rr, failed_peer_is_skipped_until_its_down_time_ends);
    tcase_add_test(rr, backup_is_used_only_when_every_primary_is_down);
    tcase_add_test(rr, max_conns_is_respected_by_the_shared_count);
    tcase_add_test(rr, one_peer_needs_no_shared_state);
    tcase_add_test(rr, slow_start_ramps_the_weight_from_zero_over_its_time);
    tcase_add_test(rr, slow_start_peer_gets_its_share_of_requests);
    tcase_add_test(rr, without_slow_start_a_recovered_peer_takes_full_weight);
    suite_add_tcase(s, rr);

    tcase_add_checked_fixture(lc, setup, teardown);
    tcase_add_test(lc, least_conn_picks_by_the_count_of_all_workers);
    tcase_add_test(lc, least_conn_spreads_connections_of_four_workers_evenly);
    tcase_add_test(lc, least_conn_scales_connections_by_weight);
    tcase_add_test(lc, backup_is_used_by_least_conn_too_when_primaries_are_down);
    suite_add_tcase(s, lc);

    tcase_add_checked_fixture(hc, setup, teardown);
    tcase_add_test(hc, a_peer_down_by_its_checks_takes_nothing);
    tcase_add_test(hc, check_results_do_not_count_when_the_group_has_no_checks);
    tcase_add_test(hc, mandatory_keeps_an_unchecked_peer_out_until_its_first_result);
    tcase_add_test(hc, drained_and_api_down_peers_take_nothing_in_any_worker);
    tcase_add_test(hc, api_up_overrides_a_configured_down);
    tcase_add_test(hc, a_weight_set_at_run_time_replaces_the_configured_one);
    suite_add_tcase(s, hc);

    tcase_add_checked_fixture(ip, setup, teardown);
    tcase_add_test(ip, ip_hash_sends_one_24_to_one_server_as_nginx);
    tcase_add_test(ip, ip_hash_sends_different_24s_to_different_servers);
    tcase_add_test(ip, ip_hash_moves_only_the_clients_of_a_down_server);
    tcase_add_test(ip, ip_bytes_are_the_24_of_ipv4_and_all_of_ipv6);
    suite_add_tcase(s, ip);

    tcase_add_checked_fixture(hash, setup, teardown);
    tcase_add_test(hash, crc32_is_the_ieee_one);
    tcase_add_test(hash, hash_without_consistent_is_stable_and_spread);
    tcase_add_test(hash, hash_without_consistent_is_crc32_modulo_the_weight);
    tcase_add_test(hash, hash_falls_back_to_another_server_when_its_own_is_down);
    tcase_add_test(hash, ketama_removing_one_of_10_servers_moves_about_a_tenth_of_keys);
    tcase_add_test(hash, ketama_down_server_keys_go_where_removal_would_send_them);
    tcase_add_test(hash, ketama_ring_has_160_points_per_weight);
    suite_add_tcase(s, hash);

    tcase_add_checked_fixture(rnd, setup, teardown);
    tcase_add_test(rnd, random_two_always_prefers_the_less_loaded);
    tcase_add_test(rnd, random_two_never_picks_the_most_loaded_of_three);
    tcase_add_test(rnd, random_follows_the_weights);
    tcase_add_test(rnd, random_never_picks_an_unusable_peer);
    suite_add_tcase(s, rnd);
    return s;
}
