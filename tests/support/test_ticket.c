/* test_ticket.c - the completion recorder of the queue tests. */
#include "test_ticket.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

static int g_seq;

void test_ticket_record(test_ticket *t, int status)
{
    t->calls++;
    t->status = status;
    t->order = ++g_seq;
}

void test_tickets_expect_in_order(const test_ticket *t, int n, int status)
{
    for (int i = 0; i < n; i++) {
        assert_int_equal(t[i].calls, 1);
        assert_int_equal(t[i].status, status);
        if (i > 0)
            assert_true(t[i].order > t[i - 1].order);
    }
}
