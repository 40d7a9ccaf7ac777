/*
 * blockoverlay_uring: the store's io_uring, as the few calls the Io layer needs
 * (src/BlockOverlay.Io/UringFileIo.cs is the only caller, through P/Invoke).
 *
 * Design. One ring per open store file. Any thread may submit (bo_ring_submit), but the
 * caller serialises submissions (one submitter at a time: liburing's SQ is not thread-safe);
 * exactly one thread reaps (bo_ring_reap), concurrently with submissions: the SQ and the CQ
 * are separate rings, and the reaper never submits. A request is a plain struct: operation,
 * fd, buffer, length, offset and a 64-bit cookie the caller chooses; its completion is that
 * cookie and the kernel's result (bytes, or -errno). The buffer must stay valid until the
 * request's completion is reaped. Short reads and writes are the caller's to resubmit.
 *
 * Gather writes. BO_OP_WRITEV and BO_OP_WRITEV_DSYNC are IORING_OP_WRITEV (the latter with
 * RWF_DSYNC): there `buffer` points at an array of struct iovec and `length` is how many
 * (at most IOV_MAX, 1024). The array, and every buffer it names, must stay valid until the
 * completion is reaped, not only until submission: the kernel may read the array when it
 * issues the request, which can be later (from its async workers). A short write is the
 * caller's to resubmit, advanced through the array.
 *
 * Batching. bo_ring_submit prepares every request of its array and enters the kernel once
 * (more often only when the array is larger than the SQ), so requests that queued up while
 * another submission was in the kernel go in together.
 *
 * Durability. BO_OP_WRITE_DSYNC is IORING_OP_WRITE with RWF_DSYNC (forced unit access,
 * like pwritev2); BO_OP_FDATASYNC is IORING_OP_FSYNC with IORING_FSYNC_DATASYNC. Neither
 * orders against other requests: the caller awaits what must come first.
 *
 * Errors. Every call returns 0 or a count, or -errno. A failed ring set-up (ENOSYS on an old
 * kernel, EPERM under kernel.io_uring_disabled or seccomp) is reported as such, so the caller
 * can fall back to its pread/pwrite backend.
 */
#include <errno.h>
#include <liburing.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

enum bo_op {
    BO_OP_NOP = 0,
    BO_OP_READ = 1,
    BO_OP_WRITE = 2,
    BO_OP_WRITE_DSYNC = 3,
    BO_OP_FDATASYNC = 4,
    BO_OP_WRITEV = 5,
    BO_OP_WRITEV_DSYNC = 6,
};

/* One request; mirrored field for field by UringShim.Request in C# (LP64: 40 bytes). */
struct bo_request {
    uint64_t cookie;
    uint64_t offset;
    void *buffer;     /* bytes; for BO_OP_WRITEV*, a struct iovec array */
    uint32_t length;  /* bytes; for BO_OP_WRITEV*, the iovec count */
    int32_t fd;
    uint32_t op; /* enum bo_op */
    uint32_t reserved;
};
_Static_assert(sizeof(struct bo_request) == 40, "bo_request is 40 bytes");

struct bo_ring {
    struct io_uring ring;
};

int bo_ring_create(uint32_t entries, uint32_t cq_entries, struct bo_ring **out)
{
    struct io_uring_params params = { 0 };
    struct bo_ring *ring;
    int ret;

    *out = NULL;
    ring = calloc(1, sizeof(*ring));
    if (ring == NULL)
        return -ENOMEM;
    params.flags = IORING_SETUP_CQSIZE;
    params.cq_entries = cq_entries;
    ret = io_uring_queue_init_params(entries, &ring->ring, &params);
    if (ret < 0) {
        free(ring);
        return ret;
    }
    *out = ring;
    return 0;
}

void bo_ring_destroy(struct bo_ring *ring)
{
    if (ring == NULL)
        return;
    io_uring_queue_exit(&ring->ring);
    free(ring);
}

static void prepare(struct io_uring_sqe *sqe, const struct bo_request *r)
{
    switch (r->op) {
    case BO_OP_READ:
        io_uring_prep_read(sqe, r->fd, r->buffer, r->length, r->offset);
        break;
    case BO_OP_WRITE:
        io_uring_prep_write(sqe, r->fd, r->buffer, r->length, r->offset);
        break;
    case BO_OP_WRITE_DSYNC:
        io_uring_prep_write(sqe, r->fd, r->buffer, r->length, r->offset);
        sqe->rw_flags = RWF_DSYNC;
        break;
    case BO_OP_WRITEV:
        io_uring_prep_writev(sqe, r->fd, (const struct iovec *)r->buffer, r->length, r->offset);
        break;
    case BO_OP_WRITEV_DSYNC:
        io_uring_prep_writev(sqe, r->fd, (const struct iovec *)r->buffer, r->length, r->offset);
        sqe->rw_flags = RWF_DSYNC;
        break;
    case BO_OP_FDATASYNC:
        io_uring_prep_fsync(sqe, r->fd, IORING_FSYNC_DATASYNC);
        break;
    default:
        io_uring_prep_nop(sqe);
        break;
    }
    io_uring_sqe_set_data64(sqe, r->cookie);
}

/*
 * Hands every prepared SQE to the kernel. EINTR is retried; EAGAIN and EBUSY (the kernel
 * short of memory, or a full CQ on old kernels) are retried after a short sleep, because
 * the prepared SQEs already point at the caller's buffers and must not be left behind.
 */
static int submit_prepared(struct bo_ring *ring)
{
    const struct timespec pause = { .tv_sec = 0, .tv_nsec = 50 * 1000 };
    int ret;

    while (io_uring_sq_ready(&ring->ring) > 0) {
        ret = io_uring_submit(&ring->ring);
        if (ret == -EINTR)
            continue;
        if (ret == -EAGAIN || ret == -EBUSY) {
            nanosleep(&pause, NULL);
            continue;
        }
        if (ret < 0)
            return ret;
    }
    return 0;
}

int bo_ring_submit(struct bo_ring *ring, const struct bo_request *requests, uint32_t count)
{
    struct io_uring_sqe *sqe;
    uint32_t i;
    int ret;

    for (i = 0; i < count; i++) {
        sqe = io_uring_get_sqe(&ring->ring);
        if (sqe == NULL) {
            /* The SQ is full: hand it over (non-SQPOLL, the kernel takes it all) and go on. */
            ret = submit_prepared(ring);
            if (ret < 0)
                return ret;
            sqe = io_uring_get_sqe(&ring->ring);
            if (sqe == NULL)
                return -EBUSY;
        }
        prepare(sqe, &requests[i]);
    }
    return submit_prepared(ring);
}

int bo_ring_reap(struct bo_ring *ring, uint64_t *cookies, int32_t *results, uint32_t max)
{
    struct io_uring_cqe *cqe;
    uint32_t count = 0;
    unsigned head;
    int ret;

    do
        ret = io_uring_wait_cqe(&ring->ring, &cqe);
    while (ret == -EINTR);
    if (ret < 0)
        return ret;
    io_uring_for_each_cqe(&ring->ring, head, cqe) {
        if (count == max)
            break;
        cookies[count] = io_uring_cqe_get_data64(cqe);
        results[count] = cqe->res;
        count++;
    }
    io_uring_cq_advance(&ring->ring, count);
    return (int)count;
}
