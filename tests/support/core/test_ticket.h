/* test_ticket.h - the completion recorder of the queue tests: how often a
 * ticket (or a shutdown) completed, its last status, and its place in one
 * completion sequence shared by every recorder of the process. */
#ifndef BH_TEST_TICKET_H
#define BH_TEST_TICKET_H

typedef struct test_ticket {
    int calls;
    int status;
    int order; /* completion sequence number */
} test_ticket;

/* Records one completion of t with status. */
void test_ticket_record(test_ticket *t, int status);

/* Asserts (cmocka) that each of t[0..n) completed exactly once with status,
 * in array order. */
void test_tickets_expect_in_order(const test_ticket *t, int n, int status);

/* Asserts (cmocka) that each of t[0..n) completed exactly once, that at least
 * one failed, that the failures all share one status and that no success
 * comes after a failure (the pending ones fail together). Returns that
 * status. */
int test_tickets_expect_failed_tail(const test_ticket *t, int n);

#endif
