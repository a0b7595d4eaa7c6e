/* tunnel_splice.c - the Linux splice(2) fast path of bh_tunnel.
 *
 * A splicing direction moves bytes source socket -> pipe -> destination
 * socket with two splice(2) calls and no user-space copy (Go's io.Copy does
 * the same for TCP to TCP). libuv keeps one watcher per fd and its uv_tcp_t
 * must not read while someone else does, so the tunnel polls a dup() of each
 * socket with its own uv_poll_t: the dup is a separate epoll registration of
 * the same socket, and the libuv handle stays usable by the other direction
 * (reading on the buffer path, or shutting the write side down). While a
 * direction splices, its source's bh_reader is stopped and its destination's
 * queue is idle. The pipe is the direction's only buffer: nothing more is
 * read while it holds bytes the destination has not taken (backpressure),
 * and the poll waits for whichever end blocks.
 *
 * Pipes come from a small per-thread pool of empty pipes (HAProxy keeps one
 * too): a direction that starts splicing takes one there before it creates
 * one, and a direction gives its pipe back when it is empty (at its EOF, or
 * when the tunnel ends). A pipe that may hold bytes (the tunnel ended
 * mid-splice) is closed, never pooled; the pool is closed when its thread
 * exits.
 *
 * Splicing a trickle costs two system calls per small segment: after a run
 * of short splices the direction returns to the buffer path (and may come
 * back after large reads). Setup failures (no fd for a pipe or a dup,
 * EMFILE) and splice errors that are not connection errors return it to the
 * buffer path for good; connection errors end the tunnel. */
#ifdef __linux__
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#endif

#include "stream_internal.h"
#include "tunnel_internal.h"

#ifdef __linux__

#define SPLICE_CHUNK ((size_t)1 << 20) /* asked of one splice into the pipe */
#define SPLICE_ROUND ((size_t)4 << 20) /* moved per callback before yielding */
#define SHORT_SPLICES 8u               /* short splices in a row -> buffers */

/* Splice state, allocated when a direction first splices (a tunnel that
 * never moves enough bytes to splice carries none of it). Index d is
 * direction d for the pipe and its counters, side d for the dup and poll. */
struct bh_tunnel_splice {
    struct splice_dir {
        int pipe[2];           /* direction d's pipe, -1 when none */
        size_t piped;          /* bytes in it */
        unsigned small_splices; /* short splices in a row */
        int dupfd;             /* dup() of side d's fd, -1 if none */
        uv_poll_t poll;        /* polls dupfd while splicing */
        int poll_events;       /* events poll is started with */
        int poll_init;         /* poll needs a uv_close() */
    } dir[2];
};

static struct bh_tunnel_splice *splice_state(bh_tunnel *t)
{
    if (!t->splice && (t->splice = bh_malloc(sizeof *t->splice)) != NULL) {
        memset(t->splice, 0, sizeof *t->splice);
        for (int s = 0; s < 2; s++) {
            t->splice->dir[s].pipe[0] = t->splice->dir[s].pipe[1] = -1;
            t->splice->dir[s].dupfd = -1;
        }
    }
    return t->splice;
}

void bh__tunnel_splice_free(bh_tunnel *t)
{
    bh_free(t->splice);
    t->splice = NULL;
}

static void on_poll(uv_poll_t *p, int status, int events);

/* ---- the pipe pool ------------------------------------------------------- */

#define PIPE_POOL_MAX 8 /* empty pipes kept per thread */

typedef struct pipe_pool {
    int n;
    int fd[PIPE_POOL_MAX][2];
} pipe_pool;

static _Thread_local pipe_pool pool;
static pthread_key_t pool_key;
static pthread_once_t pool_once = PTHREAD_ONCE_INIT;
static int pool_key_ok;

/* Thread exit and bh_tunnel_pipes_trim(): closes a thread's pooled pipes. */
static void pool_close(void *arg)
{
    pipe_pool *pp = arg;
    while (pp->n > 0) {
        pp->n--;
        close(pp->fd[pp->n][0]);
        close(pp->fd[pp->n][1]);
    }
}

void bh_tunnel_pipes_trim(void) { pool_close(&pool); }

static void pool_key_make(void) { pool_key_ok = pthread_key_create(&pool_key, pool_close) == 0; }

/* Takes an empty pipe from the thread's pool: 1, or 0 when it has none. */
static int pool_take(int fd[2])
{
    if (pool.n == 0)
        return 0;
    pool.n--;
    fd[0] = pool.fd[pool.n][0];
    fd[1] = pool.fd[pool.n][1];
    return 1;
}

/* Gives an empty pipe to the thread's pool, or closes it when the pool is
 * full or could not be closed at thread exit. */
static void pool_give(int fd[2])
{
    (void)pthread_once(&pool_once, pool_key_make);
    if (pool.n < PIPE_POOL_MAX && pool_key_ok &&
        (pthread_getspecific(pool_key) || pthread_setspecific(pool_key, &pool) == 0)) {
        pool.fd[pool.n][0] = fd[0];
        pool.fd[pool.n][1] = fd[1];
        pool.n++;
    } else {
        close(fd[0]);
        close(fd[1]);
    }
    fd[0] = fd[1] = -1;
}

/* ---- splicing ------------------------------------------------------------- */

/* Splicing takes up to three fds per direction (its pipe, and a dup of each
 * socket, shared by both directions), never from the top quarter of
 * RLIMIT_NOFILE: fds are numbered lowest first, so a new fd up there means
 * the process is near its limit, where accept() needs them more. */
static int fd_headroom_ok(int fd)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
        return 1;
    return (rlim_t)fd < rl.rlim_cur - rl.rlim_cur / 4;
}

/* Starts, changes or stops side s's poll to what the directions splicing
 * through it wait for. */
static int update_poll(bh_tunnel *t, int s)
{
    struct splice_dir *sd = &t->splice->dir[s];
    int ev = 0;
    if ((t->side[s].flags & (DIR_SPLICE | DIR_WAIT_IN)) == (DIR_SPLICE | DIR_WAIT_IN))
        ev |= UV_READABLE;
    if ((t->side[1 - s].flags & (DIR_SPLICE | DIR_WAIT_OUT)) == (DIR_SPLICE | DIR_WAIT_OUT))
        ev |= UV_WRITABLE;
    if (!sd->poll_init || ev == sd->poll_events)
        return 0;
    int rc = ev ? uv_poll_start(&sd->poll, ev, on_poll) : uv_poll_stop(&sd->poll);
    if (rc == 0)
        sd->poll_events = ev;
    return rc;
}

static int ensure_poll(bh_tunnel *t, int s)
{
    struct splice_dir *sd = &t->splice->dir[s];
    uv_os_fd_t fd;
    if (sd->poll_init)
        return 0;
    int rc = uv_fileno((uv_handle_t *)t->side[s].stream, &fd);
    if (rc != 0)
        return rc;
    int dfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (dfd < 0)
        return -errno;
    if (!fd_headroom_ok(dfd)) {
        close(dfd);
        return UV_EMFILE;
    }
    rc = uv_poll_init(t->loop, &sd->poll, dfd);
    if (rc != 0) {
        close(dfd);
        return rc;
    }
    sd->poll.data = t;
    sd->dupfd = dfd;
    sd->poll_init = 1;
    return 0;
}

/* Lets go of direction sd's pipe: back to the pool when it is empty, else
 * closed (its bytes go with it). */
static void release_pipe(struct splice_dir *sd)
{
    if (sd->pipe[0] >= 0 && sd->piped == 0) {
        pool_give(sd->pipe);
        return;
    }
    for (int i = 0; i < 2; i++) {
        if (sd->pipe[i] >= 0)
            close(sd->pipe[i]);
        sd->pipe[i] = -1;
    }
}

int bh__tunnel_splice_begin(bh_tunnel *t, int d)
{
    if (!splice_state(t))
        return BH_ENOMEM;
    struct splice_dir *sd = &t->splice->dir[d];
    int rc;
    if (sd->pipe[0] < 0 && !pool_take(sd->pipe)) {
        if (pipe2(sd->pipe, O_NONBLOCK | O_CLOEXEC) != 0) {
            sd->pipe[0] = sd->pipe[1] = -1;
            return -errno;
        }
        if (!fd_headroom_ok(sd->pipe[0] > sd->pipe[1] ? sd->pipe[0] : sd->pipe[1])) {
            close(sd->pipe[0]); /* near the limit: not kept for later either */
            close(sd->pipe[1]);
            sd->pipe[0] = sd->pipe[1] = -1;
            return UV_EMFILE;
        }
    }
    if ((rc = ensure_poll(t, d)) != 0 || (rc = ensure_poll(t, 1 - d)) != 0)
        return rc;
    sd->piped = 0;
    sd->small_splices = 0;
    t->side[d].flags |= DIR_SPLICE | DIR_WAIT_IN;
    if ((rc = update_poll(t, d)) != 0) {
        t->side[d].flags &= ~(DIR_SPLICE | DIR_WAIT_IN);
        return rc;
    }
    return 0;
}

/* Errors of a splice that mean the connection is gone, not that splicing
 * is impossible. */
static int connection_error(int e)
{
    return e == ECONNRESET || e == EPIPE || e == ETIMEDOUT || e == ENOTCONN ||
           e == ECONNABORTED || e == EHOSTUNREACH || e == ENETUNREACH;
}


/* Leaves the splice path with an empty pipe. */
static void leave(bh_tunnel *t, int d)
{
    t->side[d].flags &= ~(DIR_SPLICE | DIR_WAIT_IN | DIR_WAIT_OUT);
    (void)update_poll(t, d);
    (void)update_poll(t, 1 - d);
}

/* Moves what direction d can move now. Ends with the direction waiting on
 * one end, back on the buffer path, done with its source, or the tunnel
 * ending. */
static void pump(bh_tunnel *t, int d)
{
    bh_tunnel_side *s = &t->side[d];
    struct splice_dir *sd = &t->splice->dir[d];
    int out = t->splice->dir[1 - d].dupfd;
    size_t moved = 0;
    bh__tunnel_wait(t, d, 0);
    s->flags &= ~(DIR_WAIT_IN | DIR_WAIT_OUT);
    for (;;) {
        while (sd->piped > 0) {
            ssize_t m = splice(sd->pipe[0], NULL, out, NULL, sd->piped,
                               SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
            if (m > 0) {
                sd->piped -= (size_t)m;
                t->spliced[d] += (uint64_t)m;
                moved += (size_t)m;
                continue;
            }
            if (m < 0 && errno == EINTR)
                continue;
            if (m < 0 && errno == EAGAIN) {
                s->flags |= DIR_WAIT_OUT;
                bh__tunnel_wait(t, d, 1);
                goto wait;
            }
            bh__tunnel_end(t, m < 0 ? -errno : UV_EPIPE);
            return;
        }
        if (s->flags & DIR_EOF) {
            leave(t, d);
            release_pipe(sd);
            bh__tunnel_pass_eof(t, d);
            return;
        }
        if (sd->small_splices >= SHORT_SPLICES) {
            if (moved > 0)
                bh__tunnel_touch(t);
            leave(t, d);
            bh__tunnel_resume_buffers(t, d, 0);
            return;
        }
        if (moved >= SPLICE_ROUND) {
            s->flags |= DIR_WAIT_IN; /* level-triggered: called again at once */
            goto wait;
        }
        ssize_t n = splice(sd->dupfd, NULL, sd->pipe[1], NULL, SPLICE_CHUNK,
                           SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (n > 0) {
            sd->piped = (size_t)n;
            if ((size_t)n < t->read_reserve / 4)
                sd->small_splices++;
            else
                sd->small_splices = 0;
            continue;
        }
        if (n == 0) {
            if (bh__stream_eof_is_reset(s->stream, 0)) {
                bh__tunnel_end(t, UV_ECONNRESET);
                return;
            }
            s->flags |= DIR_EOF;
            continue;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN) {
            s->flags |= DIR_WAIT_IN;
            goto wait;
        }
        if (connection_error(errno)) {
            /* A read reports an RST after the peer's FIN as EPIPE. */
            bh__tunnel_end(t, errno == EPIPE ? UV_ECONNRESET : -errno);
            return;
        }
        leave(t, d);
        bh__tunnel_resume_buffers(t, d, 1);
        return;
    }
wait:
    if (moved > 0)
        bh__tunnel_touch(t);
    if (update_poll(t, d) != 0 || update_poll(t, 1 - d) != 0)
        bh__tunnel_end(t, BH_EIO);
}

/* libuv reports POLLERR as UV_EBADF: the socket's pending error says what
 * happened (EPIPE there is an RST that followed the peer's FIN). */
static int poll_error(const struct splice_dir *sd, int status)
{
    int err = 0;
    socklen_t len = sizeof err;
    if (sd->dupfd >= 0 && getsockopt(sd->dupfd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err)
        return err == EPIPE ? UV_ECONNRESET : -err;
    return status == UV_EBADF ? UV_ECONNRESET : status;
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    bh_tunnel *t = p->data;
    int s = p == &t->splice->dir[0].poll ? 0 : 1;
    if (t->ending)
        return;
    if (status < 0) {
        t->splice->dir[s].poll_events = 0; /* libuv stopped the handle */
        bh__tunnel_end(t, poll_error(&t->splice->dir[s], status));
        return;
    }
    if ((events & UV_READABLE) && (t->side[s].flags & DIR_WAIT_IN))
        pump(t, s);
    if (!t->ending && (events & UV_WRITABLE) && (t->side[1 - s].flags & DIR_WAIT_OUT))
        pump(t, 1 - s);
}

int bh__tunnel_splice_close(bh_tunnel *t, uv_close_cb close_cb)
{
    int n = 0;
    if (!t->splice)
        return 0;
    for (int s = 0; s < 2; s++) {
        struct splice_dir *sd = &t->splice->dir[s];
        release_pipe(sd);
        if (sd->poll_init) {
            /* uv_close() removes the dup from epoll at once: closing it now
             * cannot leave a stale registration behind. */
            uv_close((uv_handle_t *)&sd->poll, close_cb);
            sd->poll_init = 0;
            n++;
        }
        if (sd->dupfd >= 0)
            close(sd->dupfd);
        sd->dupfd = -1;
        sd->poll_events = 0;
    }
    return n;
}

#else /* !__linux__: no splice(2); every direction stays on the buffer path. */

void bh_tunnel_pipes_trim(void) {}

void bh__tunnel_splice_free(bh_tunnel *t) { (void)t; }

int bh__tunnel_splice_begin(bh_tunnel *t, int d)
{
    (void)t;
    (void)d;
    return BH_EINVAL;
}

int bh__tunnel_splice_close(bh_tunnel *t, uv_close_cb close_cb)
{
    (void)t;
    (void)close_cb;
    return 0;
}

#endif
