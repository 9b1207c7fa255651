/*
 * A vhost-user-blk front end of the project's own, to measure an export
 * without a virtual machine: guest memory is a memfd, each of N
 * virtqueues is driven by its own thread that keeps DEPTH requests in
 * flight (every completion is answered with a new request at once) for
 * SECONDS, then prints the requests completed per second.
 *
 *   bench-vhost-user-blk SOCKET [-q QUEUES] [-d DEPTH] [-t SECONDS]
 *                        [-b BLOCK_SIZE] [-w randread|randwrite|read]
 *
 * The same program runs against blockd and qemu-storage-daemon 7.2 (see
 * bench-vhost-user-blk.py, which also measures the daemon's CPU time).
 * Split rings with EVENT_IDX; three descriptors per request (header,
 * data, status); the device's write cache is turned on (SET_CONFIG of
 * the wce byte), as a guest in write-back mode does.  Output: one line "iops N mibps M errors E".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define QSIZE 256u
#define RING_AREA (1u << 20)        /* per queue: rings, headers, statuses */
#define UVA_BASE 0x7f0000000000ull

enum {
    GET_FEATURES = 1, SET_FEATURES = 2, SET_OWNER = 3, SET_MEM_TABLE = 5,
    SET_VRING_NUM = 8, SET_VRING_ADDR = 9, SET_VRING_BASE = 10,
    SET_VRING_KICK = 12, SET_VRING_CALL = 13, GET_PROTOCOL_FEATURES = 15,
    SET_PROTOCOL_FEATURES = 16, GET_QUEUE_NUM = 17, SET_VRING_ENABLE = 18,
    GET_CONFIG = 24, SET_CONFIG = 25,
};

typedef struct Desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
} Desc;

typedef struct Queue {
    unsigned index;
    uint8_t *base;              /* this queue's ring area */
    uint64_t gpa;               /* its guest address */
    uint8_t *data;              /* DEPTH buffers of bs bytes */
    uint64_t data_gpa;
    Desc *desc;
    volatile uint16_t *avail;   /* flags, idx, ring[QSIZE], used_event */
    volatile uint16_t *used;    /* flags, idx, then {u32 id, u32 len}... */
    int kick, call;
    uint16_t avail_idx, used_seen;
    uint64_t done, errors;
    uint64_t rng;
    pthread_t thread;
} Queue;

static unsigned nqueues = 1, depth = 32, seconds = 10, bs = 4096;
static int mode;                /* 0 randread, 1 randwrite, 2 read */
static uint64_t capacity;       /* bytes */
static volatile bool stop;
static uint8_t *mem;
static int memfd, sock;

static void die(const char *what)
{
    fprintf(stderr, "bench-vhost-user-blk: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void send_msg(uint32_t req, const void *payload, uint32_t size,
                     int fd)
{
    uint8_t buf[512];
    uint32_t hdr[3] = { req, 1, size };
    union {
        char b[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } u;
    struct iovec iov = { buf, 12 + size };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

    memcpy(buf, hdr, 12);
    memcpy(buf + 12, payload, size);
    if (fd >= 0) {
        struct cmsghdr *cm;

        memset(&u, 0, sizeof(u));
        mh.msg_control = u.b;
        mh.msg_controllen = sizeof(u.b);
        cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cm), &fd, sizeof(int));
    }
    if (sendmsg(sock, &mh, MSG_NOSIGNAL) != (ssize_t)(12 + size)) {
        die("sendmsg");
    }
}

static void recv_reply(void *payload, uint32_t size)
{
    uint32_t hdr[3];
    uint8_t buf[512];

    if (recv(sock, hdr, 12, MSG_WAITALL) != 12 || hdr[2] > sizeof(buf) ||
        recv(sock, buf, hdr[2], MSG_WAITALL) != (ssize_t)hdr[2]) {
        die("reply");
    }
    memcpy(payload, buf, size < hdr[2] ? size : hdr[2]);
}

static uint64_t get_u64(uint32_t req)
{
    uint64_t v = 0;

    send_msg(req, NULL, 0, -1);
    recv_reply(&v, 8);
    return v;
}

static uint64_t xorshift(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Put request @slot (descriptors 3 slot..3 slot+2) on the ring. */
static void submit(Queue *q, unsigned slot)
{
    uint8_t *hdr = q->base + 16384 + slot * 16;
    uint64_t blocks = capacity / bs;
    uint64_t off;
    uint32_t type = mode == 1 ? 1 : 0;
    Desc *d = &q->desc[slot * 3];

    if (mode == 2) {
        off = (q->rng++ % blocks) * bs;
    } else {
        off = (xorshift(&q->rng) % blocks) * bs;
    }
    memcpy(hdr, &type, 4);
    memset(hdr + 4, 0, 4);
    off /= 512;
    memcpy(hdr + 8, &off, 8);
    d[0] = (Desc) { q->gpa + 16384 + slot * 16, 16, 1, slot * 3 + 1 };
    d[1] = (Desc) { q->data_gpa + (uint64_t)slot * bs, bs,
                    1 | (type == 0 ? 2 : 0), slot * 3 + 2 };
    d[2] = (Desc) { q->gpa + 32768 + slot, 1, 2, 0 };
    q->avail[2 + q->avail_idx % QSIZE] = slot * 3;
    q->avail_idx++;
}

static void publish_and_kick(Queue *q)
{
    __atomic_store_n(&q->avail[1], q->avail_idx, __ATOMIC_RELEASE);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    eventfd_write(q->kick, 1);
}

static void *queue_thread(void *opaque)
{
    Queue *q = opaque;

    for (unsigned i = 0; i < depth; i++) {
        submit(q, i);
    }
    publish_and_kick(q);
    while (!stop) {
        uint16_t used = __atomic_load_n(&q->used[1], __ATOMIC_ACQUIRE);
        unsigned n = 0;

        while (q->used_seen != used) {
            volatile uint32_t *e = (volatile uint32_t *)
                (q->used + 2) + 2 * (q->used_seen % QSIZE);
            unsigned slot = e[0] / 3;

            if (q->base[32768 + slot] != 0) {
                q->errors++;
            }
            q->used_seen++;
            q->done++;
            submit(q, slot);
            n++;
        }
        if (n) {
            publish_and_kick(q);
        }
        /* used_event: interrupt us for the next completion. */
        __atomic_store_n(&q->avail[2 + QSIZE], q->used_seen,
                         __ATOMIC_RELEASE);
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        if (__atomic_load_n(&q->used[1], __ATOMIC_ACQUIRE) == q->used_seen) {
            struct pollfd pfd = { .fd = q->call, .events = POLLIN };
            eventfd_t v;

            if (poll(&pfd, 1, 100) > 0) {
                eventfd_read(q->call, &v);
            }
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    uint64_t features, pf, memsize;
    Queue *qs;
    struct timespec t0, t1;
    double secs;
    uint64_t total = 0, errors = 0;
    int opt;

    while ((opt = getopt(argc, argv, "q:d:t:b:w:")) != -1) {
        switch (opt) {
        case 'q': nqueues = atoi(optarg); break;
        case 'd': depth = atoi(optarg); break;
        case 't': seconds = atoi(optarg); break;
        case 'b': bs = atoi(optarg); break;
        case 'w':
            mode = !strcmp(optarg, "randwrite") ? 1 :
                   !strcmp(optarg, "read") ? 2 : 0;
            break;
        default:
            fprintf(stderr, "usage: %s SOCKET [-q QUEUES] [-d DEPTH] "
                    "[-t SECONDS] [-b BS] [-w randread|randwrite|read]\n",
                    argv[0]);
            return 2;
        }
    }
    if (optind != argc - 1 || depth * 3 > QSIZE || !nqueues || !bs) {
        fprintf(stderr, "bench-vhost-user-blk: bad arguments\n");
        return 2;
    }
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", argv[optind]);
    sock = socket(AF_UNIX, SOCK_STREAM, 0);
    if (connect(sock, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        die("connect");
    }

    features = get_u64(GET_FEATURES);
    features &= (1ull << 32) | (1ull << 30) | (1ull << 29) | (1ull << 9) |
                (1ull << 12) | (1ull << 6);
    send_msg(SET_FEATURES, &features, 8, -1);
    pf = get_u64(GET_PROTOCOL_FEATURES) & ((1ull << 0) | (1ull << 9));
    send_msg(SET_PROTOCOL_FEATURES, &pf, 8, -1);
    send_msg(SET_OWNER, NULL, 0, -1);
    if (nqueues > get_u64(GET_QUEUE_NUM)) {
        fprintf(stderr, "bench-vhost-user-blk: the export has fewer "
                "queues than %u\n", nqueues);
        return 1;
    }
    {
        uint32_t c[3 + 2] = { 0, 8, 0 };

        send_msg(GET_CONFIG, c, 12 + 8, -1);
        recv_reply(c, 20);
        memcpy(&capacity, &c[3], 8);
        capacity *= 512;
    }
    {
        /*
         * Write back, as a guest that turned its cache on: both daemons
         * start write-through (qemu-storage-daemon only in what it
         * reports), so writes are compared with the same semantics.
         */
        uint32_t c[3 + 1] = { 32, 1, 0, 1 };

        send_msg(SET_CONFIG, c, 13, -1);
    }
    if (capacity < bs) {
        fprintf(stderr, "bench-vhost-user-blk: the disk is too small\n");
        return 1;
    }

    memsize = (uint64_t)nqueues * (RING_AREA + (uint64_t)depth * bs);
    memsize = (memsize + 0x1fffff) & ~0x1fffffull;
    memfd = memfd_create("bench-guest", 0);
    if (memfd < 0 || ftruncate(memfd, memsize) < 0) {
        die("memfd");
    }
    mem = mmap(NULL, memsize, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
    if (mem == MAP_FAILED) {
        die("mmap");
    }
    {
        uint64_t table[1 + 4] = { 1, 0, memsize, UVA_BASE, 0 };

        send_msg(SET_MEM_TABLE, table, 8 + 32, memfd);
    }

    qs = calloc(nqueues, sizeof(Queue));
    for (unsigned i = 0; i < nqueues; i++) {
        Queue *q = &qs[i];
        uint32_t st[2];
        struct {
            uint32_t index, flags;
            uint64_t desc, used, avail, log;
        } __attribute__((packed)) addr;
        uint64_t u;

        q->index = i;
        q->gpa = (uint64_t)i * RING_AREA;
        q->base = mem + q->gpa;
        q->data_gpa = (uint64_t)nqueues * RING_AREA +
                      (uint64_t)i * depth * bs;
        q->data = mem + q->data_gpa;
        q->desc = (Desc *)q->base;
        q->avail = (volatile uint16_t *)(q->base + 4096);
        q->used = (volatile uint16_t *)(q->base + 8192);
        q->rng = 0x9e3779b97f4a7c15ull * (i + 1);
        q->kick = eventfd(0, 0);
        q->call = eventfd(0, EFD_NONBLOCK);
        st[0] = i;
        st[1] = QSIZE;
        send_msg(SET_VRING_NUM, st, 8, -1);
        st[1] = 0;
        send_msg(SET_VRING_BASE, st, 8, -1);
        addr = (typeof(addr)) { i, 0, UVA_BASE + q->gpa,
                                UVA_BASE + q->gpa + 8192,
                                UVA_BASE + q->gpa + 4096, 0 };
        send_msg(SET_VRING_ADDR, &addr, sizeof(addr), -1);
        u = i;
        send_msg(SET_VRING_CALL, &u, 8, q->call);
        send_msg(SET_VRING_KICK, &u, 8, q->kick);
        st[1] = 1;
        send_msg(SET_VRING_ENABLE, st, 8, -1);
    }
    /* A round trip, so that every message has been applied. */
    get_u64(GET_FEATURES);

    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (unsigned i = 0; i < nqueues; i++) {
        pthread_create(&qs[i].thread, NULL, queue_thread, &qs[i]);
    }
    sleep(seconds);
    stop = true;
    for (unsigned i = 0; i < nqueues; i++) {
        pthread_join(qs[i].thread, NULL);
        total += qs[i].done;
        errors += qs[i].errors;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    secs = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("iops %.0f mibps %.1f errors %" PRIu64 "\n", total / secs,
           total * (double)bs / secs / (1 << 20), errors);
    close(sock);
    return errors ? 1 : 0;
}
