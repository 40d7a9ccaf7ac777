/*
 * write-pages: how fast the disk takes 1 MiB O_DIRECT writes (RWF_DSYNC, through io_uring,
 * two in flight) depending on the memory they come from. It is the measurement behind the
 * write-back cache's block slabs (src/BlockOverlay.Engine/Cache/DirtyBlockPool.cs): a batch is
 * written from the dirty blocks' own memory, one iovec per 4 KiB block unless blocks sit side
 * by side, so what matters is how many physically separate pieces a 1 MiB write is made of.
 *
 *   cc -O2 -o /tmp/write-pages perf/write-pages.c -luring
 *   /tmp/write-pages FILE MODE      (FILE: at least 256 MiB, already written; MODE below)
 *
 * Modes: w  IORING_OP_WRITE from one 1 MiB buffer (what a staging copy gave);
 *        o  IORING_OP_WRITEV of 256 in-order 4 KiB iovecs over ordinary pages;
 *        v  the same, the 4 KiB pages shuffled (blocks from anywhere in the cache);
 *        h  as o, over a 2 MiB range advised MADV_HUGEPAGE (one transparent huge page).
 * Prints MB/s and the system CPU per MiB. Results and the command line of a run: perf/RESULTS.md,
 * "Notes on noisy-neighbour". Alternate the modes over several rounds: the disk is shared.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define MIB (1 << 20)
#define PAGE 4096
#define PAGES (MIB / PAGE)
#define WRITES 256

static double seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static double system_seconds(void)
{
    struct rusage r;
    getrusage(RUSAGE_SELF, &r);
    return r.ru_stime.tv_sec + r.ru_stime.tv_usec / 1e6;
}

/* 2 MiB of memory for two writes' pages, in the layout the mode asks for. */
static char *pages(char mode)
{
    char *memory = NULL;
    if (mode == 'h') {
        char *range = mmap(NULL, 4 * MIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (range == MAP_FAILED)
            return NULL;
        memory = (char *)(((unsigned long)range + 2 * MIB - 1) & ~(2UL * MIB - 1));
        madvise(memory, 2 * MIB, MADV_HUGEPAGE);
    } else if (posix_memalign((void **)&memory, PAGE, 2 * MIB) != 0) {
        return NULL;
    }
    memset(memory, 0x5a, 2 * MIB);
    return memory;
}

int main(int argc, char **argv)
{
    struct iovec iov[2][PAGES];
    int order[2 * PAGES];
    struct io_uring ring;
    char mode;
    char *memory;
    int fd, next = 0, done = 0, in_flight = 0;
    double start, system_start;

    if (argc != 3 || strchr("wovh", argv[2][0]) == NULL) {
        fprintf(stderr, "usage: %s FILE w|o|v|h\n", argv[0]);
        return 2;
    }
    mode = argv[2][0];
    fd = open(argv[1], O_RDWR | O_DIRECT);
    memory = pages(mode);
    if (fd < 0 || memory == NULL || io_uring_queue_init(8, &ring, 0) < 0) {
        perror("write-pages: set-up");
        return 1;
    }
    for (int i = 0; i < 2 * PAGES; i++)
        order[i] = i;
    if (mode == 'v') {
        srand(1);
        for (int i = 2 * PAGES - 1; i > 0; i--) {
            int j = rand() % (i + 1), t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
    }
    for (int w = 0; w < 2; w++)
        for (int i = 0; i < PAGES; i++) {
            iov[w][i].iov_base = memory + (size_t)order[w * PAGES + i] * PAGE;
            iov[w][i].iov_len = PAGE;
        }

    start = seconds();
    system_start = system_seconds();
    while (done < WRITES) {
        struct io_uring_cqe *cqe = NULL;
        while (in_flight < 2 && next < WRITES) {
            struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
            int w = next % 2;
            if (mode == 'w')
                io_uring_prep_write(sqe, fd, memory + (size_t)w * MIB, MIB, (off_t)next * MIB);
            else
                io_uring_prep_writev(sqe, fd, iov[w], PAGES, (off_t)next * MIB);
            sqe->rw_flags = RWF_DSYNC;
            io_uring_submit(&ring);
            next++;
            in_flight++;
        }
        if (io_uring_wait_cqe(&ring, &cqe) < 0 || cqe->res != MIB) {
            fprintf(stderr, "write-pages: a write failed or was short (%d)\n", cqe ? cqe->res : 0);
            return 1;
        }
        io_uring_cqe_seen(&ring, cqe);
        in_flight--;
        done++;
    }
    printf("%c %.0f MB/s, %.1f us of system CPU per MiB\n", mode, WRITES / (seconds() - start),
           (system_seconds() - system_start) * 1e6 / WRITES);
    return 0;
}
