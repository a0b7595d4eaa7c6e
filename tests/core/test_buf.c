/* test_buf.c - bh_buf: every public function and every error path. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <bytes_handoff.h>

#include "test_alloc.h"
#include "test_main.h"
#include "test_buf_fixture.h"

/* Snapshot of the observable state, to prove a failed call changed nothing. */
typedef struct snap {
    const uint8_t *data;
    size_t len, spare;
    size_t refs;
} snap;

/* References on b's block (b's own included), through the public API: a
 * one-byte prefix slice of a copy of b holds one more. */
static size_t block_refs(const bh_buf *b)
{
    if (bh_buf_len(b) == 0)
        return 0;
    bh_buf view = *b;
    bh_bytes one;
    assert_int_equal(bh_buf_split_prefix(&view, 1, &one), BH_OK);
    size_t refs = bh_bytes_refcount(&one) - 1;
    bh_bytes_release(&one);
    return refs;
}

static snap take(const bh_buf *b)
{
    snap s = {bh_buf_data(b), bh_buf_len(b), bh_buf_spare(b), block_refs(b)};
    return s;
}

static void assert_same(snap a, snap b)
{
    assert_ptr_equal(a.data, b.data);
    assert_int_equal(a.len, b.len);
    assert_int_equal(a.spare, b.spare);
    assert_int_equal(a.refs, b.refs);
}

static void init_allocates_nothing_and_rejects_zero_max(void **state)
{
    (void)state;
    bh_buf b;
    assert_int_equal(bh_buf_init(&b, 0), BH_EINVAL);
    assert_int_equal(bh_buf_init(NULL, 10), BH_EINVAL);
    assert_int_equal(bh_buf_init(&b, 10), BH_OK);
    assert_int_equal(bh_buf_len(&b), 0);
    assert_int_equal(bh_buf_max_len(&b), 10);
    assert_int_equal(test_alloc_stats_now().attempts, 0);
    bh_buf_free(&b);
    bh_buf_free(NULL);
}

static void append_then_data_holds_bytes(void **state)
{
    (void)state;
    bh_buf b;
    test_buf_holding(&b, 1024, "hello ", 6);
    assert_int_equal(bh_buf_append(&b, "world", 5), BH_OK);
    assert_int_equal(bh_buf_len(&b), 11);
    assert_memory_equal(bh_buf_data(&b), "hello world", 11);
    assert_int_equal(bh_buf_append(&b, NULL, 0), BH_OK);
    assert_int_equal(bh_buf_append(&b, NULL, 1), BH_EINVAL);
    assert_int_equal(bh_buf_append(NULL, "x", 1), BH_EINVAL);
    bh_buf_free(&b);
}

static void reserve_then_commit_makes_data(void **state)
{
    (void)state;
    bh_buf b;
    uint8_t *spare;
    size_t spare_len;
    test_buf_reserved(&b, 4096, 100, &spare, &spare_len);
    assert_true(spare_len >= 100);
    memcpy(spare, "abc", 3);
    assert_int_equal(bh_buf_commit(&b, 3), BH_OK);
    assert_memory_equal(bh_buf_data(&b), "abc", 3);
    bh_buf_free(&b);
}

static void reserve_reuses_spare_without_allocating(void **state)
{
    (void)state;
    bh_buf b;
    uint8_t *s1, *s2;
    size_t l1, l2;
    bh_buf_init(&b, 1 << 20);
    assert_int_equal(bh_buf_reserve(&b, 1000, &s1, &l1), BH_OK);
    size_t before = test_alloc_stats_now().attempts;
    assert_int_equal(bh_buf_reserve(&b, 1000, &s2, &l2), BH_OK);
    assert_int_equal(bh_buf_reserve(&b, 10, &s2, &l2), BH_OK);
    assert_ptr_equal(s1, s2);
    assert_int_equal(test_alloc_stats_now().attempts, before);
    bh_buf_free(&b);
}

static void reserve_zero_on_empty_buffer_allocates_nothing(void **state)
{
    (void)state;
    bh_buf b;
    uint8_t *spare = (uint8_t *)"x";
    size_t spare_len = 99;
    test_buf_reserved(&b, 64, 0, &spare, &spare_len);
    assert_int_equal(spare_len, 0);
    assert_null(spare);
    assert_int_equal(test_alloc_stats_now().attempts, 0);
}

static void reserve_past_max_len_fails_with_etoolong_and_changes_nothing(void **state)
{
    (void)state;
    bh_buf b;
    test_buf_holding(&b, 16, "0123456789", 10);
    snap s = take(&b);
    assert_int_equal(bh_buf_reserve(&b, 7, NULL, NULL), BH_ETOOLONG);
    assert_same(s, take(&b));
    assert_int_equal(bh_buf_reserve(&b, 6, NULL, NULL), BH_OK);
    bh_buf_free(&b);
}

static void reserve_size_max_fails_without_allocating(void **state)
{
    (void)state;
    bh_buf b;
    bh_buf_init(&b, 64);
    assert_int_equal(bh_buf_reserve(&b, SIZE_MAX, NULL, NULL), BH_ETOOLONG);
    test_buf_holding(&b, SIZE_MAX, "ab", 2);
    size_t before = test_alloc_stats_now().attempts;
    assert_int_equal(bh_buf_reserve(&b, SIZE_MAX, NULL, NULL), BH_ETOOLONG);
    snap s = take(&b);
    assert_int_equal(bh_buf_reserve(&b, SIZE_MAX - 2, NULL, NULL), BH_ENOMEM);
    assert_same(s, take(&b));
    assert_int_equal(test_alloc_stats_now().attempts, before);
    assert_memory_equal(bh_buf_data(&b), "ab", 2);
    bh_buf_free(&b);
}

static void spare_never_exceeds_max_len(void **state)
{
    (void)state;
    bh_buf b;
    size_t spare_len;
    test_buf_reserved(&b, 100, 10, NULL, &spare_len);
    assert_true(spare_len <= 100);
    assert_int_equal(bh_buf_append(&b, "0123456789", 10), BH_OK);
    assert_int_equal(bh_buf_reserve(&b, 1, NULL, &spare_len), BH_OK);
    assert_true(spare_len <= 90);
    assert_int_equal(bh_buf_commit(&b, spare_len + 1), BH_ERANGE);
    bh_buf_free(&b);
}

static void append_past_max_len_fails_and_changes_nothing(void **state)
{
    (void)state;
    bh_buf b;
    test_buf_holding(&b, 8, "12345678", 8);
    snap s = take(&b);
    assert_int_equal(bh_buf_append(&b, "9", 1), BH_ETOOLONG);
    assert_same(s, take(&b));
    bh_buf_free(&b);
}

static void commit_beyond_spare_fails_with_erange(void **state)
{
    (void)state;
    bh_buf b;
    size_t spare_len;
    bh_buf_init(&b, 1024);
    assert_int_equal(bh_buf_commit(&b, 1), BH_ERANGE);
    assert_int_equal(bh_buf_reserve(&b, 8, NULL, &spare_len), BH_OK);
    assert_int_equal(bh_buf_commit(&b, spare_len + 1), BH_ERANGE);
    assert_int_equal(bh_buf_len(&b), 0);
    assert_int_equal(bh_buf_commit(NULL, 0), BH_EINVAL);
    bh_buf_free(&b);
}

static void split_prefix_hands_off_without_copy_or_allocation(void **state)
{
    (void)state;
    bh_buf b;
    bh_bytes line = {0};
    test_buf_holding(&b, 1024, "line one\nrest", 13);
    const uint8_t *before_ptr = bh_buf_data(&b);
    size_t before = test_alloc_stats_now().attempts;
    assert_int_equal(bh_buf_split_prefix(&b, 9, &line), BH_OK);
    assert_int_equal(test_alloc_stats_now().attempts, before);
    assert_ptr_equal(line.ptr, before_ptr);
    assert_memory_equal(line.ptr, "line one\n", 9);
    assert_int_equal(bh_buf_len(&b), 4);
    assert_memory_equal(bh_buf_data(&b), "rest", 4);
    bh_bytes_release(&line);
    bh_buf_free(&b);
}

static void split_prefix_longer_than_len_fails_and_changes_nothing(void **state)
{
    (void)state;
    bh_buf b;
    bh_bytes out = bh_bytes_static("keep", 4);
    test_buf_holding(&b, 64, "abc", 3);
    snap s = take(&b);
    assert_int_equal(bh_buf_split_prefix(&b, 4, &out), BH_ERANGE);
    assert_int_equal(bh_buf_split_prefix(&b, SIZE_MAX, &out), BH_ERANGE);
    assert_same(s, take(&b));
    assert_memory_equal(out.ptr, "keep", 4);
    assert_int_equal(bh_buf_split_prefix(NULL, 0, &out), BH_EINVAL);
    assert_int_equal(bh_buf_split_prefix(&b, 0, NULL), BH_EINVAL);
    bh_buf_free(&b);
}

static void split_prefix_zero_gives_empty_slice(void **state)
{
    (void)state;
    bh_buf b;
    bh_bytes out = {0};
    bh_buf_init(&b, 64);
    assert_int_equal(bh_buf_split_prefix(&b, 0, &out), BH_OK);
    assert_int_equal(out.len, 0);
    assert_int_equal(bh_buf_append(&b, "abc", 3), BH_OK);
    assert_int_equal(bh_buf_split_prefix(&b, 0, &out), BH_OK);
    assert_int_equal(out.len, 0);
    assert_int_equal(bh_bytes_refcount(&out), 0); /* no owner */
    assert_int_equal(bh_buf_len(&b), 3);
    bh_buf_free(&b);
}

static void split_everything_leaves_empty_usable_buffer(void **state)
{
    (void)state;
    bh_buf b;
    bh_bytes all = {0};
    test_buf_holding(&b, 64, "everything", 10);
    assert_int_equal(bh_buf_split_prefix(&b, 10, &all), BH_OK);
    assert_int_equal(bh_buf_len(&b), 0);
    assert_int_equal(bh_buf_append(&b, "more", 4), BH_OK);
    assert_memory_equal(bh_buf_data(&b), "more", 4);
    assert_memory_equal(all.ptr, "everything", 10);
    bh_bytes_release(&all);
    bh_buf_free(&b);
}

static void slices_outlive_the_buffer(void **state)
{
    (void)state;
    bh_buf b;
    bh_bytes a = {0}, c = {0};
    test_buf_holding(&b, 64, "first|second|", 13);
    assert_int_equal(bh_buf_split_prefix(&b, 6, &a), BH_OK);
    assert_int_equal(bh_buf_split_prefix(&b, 7, &c), BH_OK);
    bh_buf_free(&b);
    assert_memory_equal(a.ptr, "first|", 6);
    assert_memory_equal(c.ptr, "second|", 7);
    bh_bytes_release(&a);
    bh_bytes_release(&c);
}

static void growth_while_shared_moves_only_the_tail(void **state)
{
    (void)state;
    bh_buf b;
    bh_bytes head = {0};
    bh_buf_init(&b, 1 << 20);
    uint8_t block[64];
    memset(block, 'h', sizeof block);
    assert_int_equal(bh_buf_append(&b, block, 60), BH_OK);
    assert_int_equal(bh_buf_append(&b, "tail", 4), BH_OK);
    assert_int_equal(bh_buf_split_prefix(&b, 60, &head), BH_OK);
    size_t before = test_alloc_stats_now().attempts;
    assert_int_equal(bh_buf_reserve(&b, 4096, NULL, NULL), BH_OK);
    assert_int_equal(test_alloc_stats_now().attempts, before + 1);
    assert_memory_equal(bh_buf_data(&b), "tail", 4);
    assert_int_equal(bh_bytes_refcount(&head), 1);
    for (size_t i = 0; i < 60; i++)
        assert_int_equal(head.ptr[i], 'h');
    bh_bytes_release(&head);
    bh_buf_free(&b);
}

static void growth_when_unshared_compacts_in_place(void **state)
{
    (void)state;
    bh_buf b;
    size_t spare_len;
    bh_buf_init(&b, 1 << 20);
    assert_int_equal(bh_buf_reserve(&b, 256, NULL, &spare_len), BH_OK);
    uint8_t fill[256];
    memset(fill, 'x', sizeof fill);
    assert_int_equal(bh_buf_append(&b, fill, spare_len - 3), BH_OK);
    assert_int_equal(bh_buf_append(&b, "abc", 3), BH_OK);
    const uint8_t *start = bh_buf_data(&b);
    assert_int_equal(bh_buf_advance(&b, spare_len - 3), BH_OK);
    size_t before = test_alloc_stats_now().attempts;
    assert_int_equal(bh_buf_reserve(&b, 100, NULL, NULL), BH_OK);
    assert_int_equal(test_alloc_stats_now().attempts, before);
    assert_ptr_equal(bh_buf_data(&b), start);
    assert_memory_equal(bh_buf_data(&b), "abc", 3);
    bh_buf_free(&b);
}

static void growth_beyond_block_keeps_content(void **state)
{
    (void)state;
    bh_buf b;
    bh_buf_init(&b, 1 << 20);
    uint8_t chunk[1000];
    for (int round = 0; round < 50; round++) {
        memset(chunk, 'a' + round % 26, sizeof chunk);
        assert_int_equal(bh_buf_append(&b, chunk, sizeof chunk), BH_OK);
    }
    assert_int_equal(bh_buf_len(&b), 50000);
    for (size_t i = 0; i < 50000; i++)
        assert_int_equal(bh_buf_data(&b)[i], 'a' + (i / 1000) % 26);
    bh_buf_free(&b);
}

static void released_slices_let_the_block_be_reused(void **state)
{
    (void)state;
    bh_buf b;
    bh_bytes line = {0};
    test_buf_reserved(&b, 4096, 1024, NULL, NULL);
    size_t before = test_alloc_stats_now().attempts;
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(bh_buf_append(&b, "0123456789\n", 11), BH_OK);
        assert_int_equal(bh_buf_split_prefix(&b, 11, &line), BH_OK);
        bh_bytes_release(&line);
        assert_int_equal(bh_buf_reserve(&b, 512, NULL, NULL), BH_OK);
    }
    assert_int_equal(test_alloc_stats_now().attempts, before);
    bh_buf_free(&b);
}

static void split_prefix_mut_gives_mutable_owned_prefix(void **state)
{
    (void)state;
    bh_buf b, head;
    test_buf_holding(&b, 256, "HEADbody", 8);
    size_t before = test_alloc_stats_now().attempts;
    assert_int_equal(bh_buf_split_prefix_mut(&b, 4, &head), BH_OK);
    assert_int_equal(test_alloc_stats_now().attempts, before);
    assert_int_equal(bh_buf_len(&head), 4);
    assert_int_equal(bh_buf_max_len(&head), 256);
    head.data[0] = 'h';
    assert_memory_equal(bh_buf_data(&head), "hEAD", 4);
    assert_memory_equal(bh_buf_data(&b), "body", 4);
    assert_int_equal(bh_buf_append(&head, "+more", 5), BH_OK);
    assert_memory_equal(bh_buf_data(&head), "hEAD+more", 9);
    assert_memory_equal(bh_buf_data(&b), "body", 4);
    assert_int_equal(bh_buf_append(&b, "!", 1), BH_OK);
    assert_memory_equal(bh_buf_data(&b), "body!", 5);
    bh_buf_free(&head);
    bh_buf_free(&b);
}

static void split_prefix_mut_errors_change_nothing(void **state)
{
    (void)state;
    bh_buf b, out;
    test_buf_holding(&b, 256, "abc", 3);
    snap s = take(&b);
    assert_int_equal(bh_buf_split_prefix_mut(&b, 4, &out), BH_ERANGE);
    assert_int_equal(bh_buf_split_prefix_mut(&b, 1, &b), BH_EINVAL);
    assert_int_equal(bh_buf_split_prefix_mut(&b, 1, NULL), BH_EINVAL);
    assert_same(s, take(&b));
    assert_int_equal(bh_buf_split_prefix_mut(&b, 0, &out), BH_OK);
    assert_int_equal(bh_buf_len(&out), 0);
    assert_int_equal(bh_buf_max_len(&out), 256);
    bh_buf_free(&out);
    bh_buf_free(&b);
}

static void prefix_mut_becomes_whole_block_owner_after_parent_frees(void **state)
{
    (void)state;
    bh_buf b, head;
    test_buf_reserved(&b, 4096, 1024, NULL, NULL);
    assert_int_equal(bh_buf_append(&b, "prefixrest", 10), BH_OK);
    assert_int_equal(bh_buf_split_prefix_mut(&b, 6, &head), BH_OK);
    bh_buf_free(&b);
    size_t before = test_alloc_stats_now().attempts;
    assert_int_equal(bh_buf_append(&head, "-grown", 6), BH_OK);
    assert_int_equal(test_alloc_stats_now().attempts, before);
    assert_memory_equal(bh_buf_data(&head), "prefix-grown", 12);
    bh_buf_free(&head);
}

static void advance_drops_prefix_and_checks_range(void **state)
{
    (void)state;
    bh_buf b;
    test_buf_holding(&b, 64, "0123456789", 10);
    assert_int_equal(bh_buf_advance(&b, 11), BH_ERANGE);
    assert_int_equal(bh_buf_len(&b), 10);
    assert_int_equal(bh_buf_advance(&b, 0), BH_OK);
    assert_int_equal(bh_buf_advance(&b, 4), BH_OK);
    assert_memory_equal(bh_buf_data(&b), "456789", 6);
    assert_int_equal(bh_buf_advance(&b, 6), BH_OK);
    assert_int_equal(bh_buf_len(&b), 0);
    assert_int_equal(bh_buf_advance(NULL, 0), BH_EINVAL);
    bh_buf_free(&b);
}

static void take_tail_moves_everything_without_copy(void **state)
{
    (void)state;
    bh_buf b, tail;
    bh_bytes route = {0};
    test_buf_holding(&b, 128, "ROUTE a\nraw tunnel bytes", 24);
    assert_int_equal(bh_buf_split_prefix(&b, 8, &route), BH_OK);
    const uint8_t *p = bh_buf_data(&b);
    size_t before = test_alloc_stats_now().attempts;
    assert_int_equal(bh_buf_take_tail(&b, &tail), BH_OK);
    assert_int_equal(test_alloc_stats_now().attempts, before);
    assert_ptr_equal(bh_buf_data(&tail), p);
    assert_memory_equal(bh_buf_data(&tail), "raw tunnel bytes", 16);
    assert_int_equal(bh_buf_len(&b), 0);
    assert_int_equal(bh_buf_max_len(&b), 128);
    assert_int_equal(bh_buf_append(&b, "after", 5), BH_OK);
    assert_memory_equal(bh_buf_data(&b), "after", 5);
    assert_int_equal(bh_buf_take_tail(&b, &b), BH_EINVAL);
    assert_int_equal(bh_buf_take_tail(NULL, &tail), BH_EINVAL);
    bh_bytes_release(&route);
    bh_buf_free(&tail);
    bh_buf_free(&b);
}

static void take_tail_of_empty_buffer_gives_empty_buffer(void **state)
{
    (void)state;
    bh_buf b, tail;
    bh_buf_init(&b, 16);
    assert_int_equal(bh_buf_take_tail(&b, &tail), BH_OK);
    assert_int_equal(bh_buf_len(&tail), 0);
    assert_int_equal(bh_buf_max_len(&tail), 16);
    bh_buf_free(&tail);
}

static void freeze_moves_whole_content_and_keeps_spare(void **state)
{
    (void)state;
    bh_buf b;
    bh_bytes all = {0};
    test_buf_reserved(&b, 1024, 256, NULL, NULL);
    assert_int_equal(bh_buf_append(&b, "frozen", 6), BH_OK);
    size_t before = test_alloc_stats_now().attempts;
    assert_int_equal(bh_buf_freeze(&b, &all), BH_OK);
    assert_memory_equal(all.ptr, "frozen", 6);
    assert_int_equal(bh_buf_len(&b), 0);
    assert_int_equal(bh_buf_append(&b, "next", 4), BH_OK);
    assert_int_equal(test_alloc_stats_now().attempts, before);
    assert_int_equal(bh_buf_freeze(NULL, &all), BH_EINVAL);
    bh_bytes_release(&all);
    bh_buf_free(&b);
}

static void find_locates_bytes_from_offset(void **state)
{
    (void)state;
    bh_buf b;
    bh_buf_init(&b, 64);
    assert_int_equal(bh_buf_find(&b, '\n', 0), BH_NPOS);
    assert_int_equal(bh_buf_append(&b, "a\nbc\n", 5), BH_OK);
    assert_int_equal(bh_buf_find(&b, '\n', 0), 1);
    assert_int_equal(bh_buf_find(&b, '\n', 2), 4);
    assert_int_equal(bh_buf_find(&b, 'z', 0), BH_NPOS);
    assert_int_equal(bh_buf_find(&b, 'a', 5), BH_NPOS);
    assert_int_equal(bh_buf_find(&b, 'a', SIZE_MAX), BH_NPOS);
    assert_int_equal(bh_buf_find(NULL, 'a', 0), BH_NPOS);
    bh_buf_free(&b);
}

static void free_keeps_max_len_and_allows_reuse(void **state)
{
    (void)state;
    bh_buf b;
    test_buf_holding(&b, 32, "x", 1);
    bh_buf_free(&b);
    assert_int_equal(bh_buf_len(&b), 0);
    assert_int_equal(bh_buf_max_len(&b), 32);
    assert_int_equal(bh_buf_append(&b, "y", 1), BH_OK);
    bh_buf_free(&b);
}

#define SPLITS 1000
static void split_prefix_and_split_prefix_mut_allocate_nothing(void **state)
{
    (void)state;
    bh_buf b, m;
    bh_bytes s = {0};
    bh_buf_init(&b, 1 << 20);
    uint8_t frame[64];
    memset(frame, 'f', sizeof frame);
    for (int i = 0; i < SPLITS; i++)
        assert_int_equal(bh_buf_append(&b, frame, sizeof frame), BH_OK);
    size_t before = test_alloc_stats_now().attempts;
    for (int i = 0; i < SPLITS / 2; i++) {
        assert_int_equal(bh_buf_split_prefix(&b, 64, &s), BH_OK);
        bh_bytes_release(&s);
        assert_int_equal(bh_buf_split_prefix_mut(&b, 64, &m), BH_OK);
        bh_buf_free(&m);
    }
    assert_int_equal(test_alloc_stats_now().attempts, before);
    assert_int_equal(bh_buf_len(&b), 0);
    bh_buf_free(&b);
}

#define T(f) test_alloc_checked(f)
TEST_MAIN(T(init_allocates_nothing_and_rejects_zero_max),
          T(append_then_data_holds_bytes),
          T(reserve_then_commit_makes_data),
          T(reserve_reuses_spare_without_allocating),
          T(reserve_zero_on_empty_buffer_allocates_nothing),
          T(reserve_past_max_len_fails_with_etoolong_and_changes_nothing),
          T(reserve_size_max_fails_without_allocating),
          T(spare_never_exceeds_max_len),
          T(append_past_max_len_fails_and_changes_nothing),
          T(commit_beyond_spare_fails_with_erange),
          T(split_prefix_hands_off_without_copy_or_allocation),
          T(split_prefix_longer_than_len_fails_and_changes_nothing),
          T(split_prefix_zero_gives_empty_slice),
          T(split_everything_leaves_empty_usable_buffer),
          T(slices_outlive_the_buffer),
          T(growth_while_shared_moves_only_the_tail),
          T(growth_when_unshared_compacts_in_place),
          T(growth_beyond_block_keeps_content),
          T(released_slices_let_the_block_be_reused),
          T(split_prefix_mut_gives_mutable_owned_prefix),
          T(split_prefix_mut_errors_change_nothing),
          T(prefix_mut_becomes_whole_block_owner_after_parent_frees),
          T(advance_drops_prefix_and_checks_range),
          T(take_tail_moves_everything_without_copy),
          T(take_tail_of_empty_buffer_gives_empty_buffer),
          T(freeze_moves_whole_content_and_keeps_spare),
          T(find_locates_bytes_from_offset),
          T(free_keeps_max_len_and_allows_reuse),
          T(split_prefix_and_split_prefix_mut_allocate_nothing))
#undef T
