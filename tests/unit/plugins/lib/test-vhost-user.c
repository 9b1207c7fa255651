/*
 * The vhost-user back end of plugins/lib/vhost-user, driven in-process
 * through its message API with a memfd as guest memory: descriptor
 * chains (direct, indirect) into iovecs, the used ring, when the guest
 * is interrupted (with and without EVENT_IDX), and in-flight tracking
 * across a back end that "dies" with requests in flight.
 */
#define _GNU_SOURCE
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <glib.h>

#include "vhost-user.h"

#define MEM (1 << 20)
#define UVA 0x7f0000000000ull
#define DESC 0x0
#define AVAIL 0x1000
#define USED 0x2000
#define QSIZE 16

typedef struct Fixture {
    int memfd, kick, call, inflight_fd;
    uint64_t inflight_size;
    uint8_t *mem;
    VuDev *dev;
    bool running;
} Fixture;

static uint64_t t_features(VuDev *dev)
{
    return 0;
}

static bool t_get_config(VuDev *dev, uint8_t *buf, uint32_t off, uint32_t n)
{
    memset(buf, 0, n);
    return true;
}

static void t_start(VuDev *dev, unsigned q)
{
    ((Fixture *)vu_dev_get_opaque(dev))->running = true;
}

static void t_stop(VuDev *dev, unsigned q)
{
    ((Fixture *)vu_dev_get_opaque(dev))->running = false;
}

static const VuDevOps ops = {
    .get_features = t_features, .get_config = t_get_config,
    .queue_start = t_start, .queue_stop = t_stop,
};

static int msg(Fixture *f, uint32_t req, const void *payload, uint32_t size,
               int fd, VuMsg *reply)
{
    VuMsg m, r;
    char err[256];
    int fds[1] = { fd };
    int ret;

    memset(&m, 0, sizeof(m));
    m.hdr.request = req;
    m.hdr.flags = VHOST_USER_VERSION;
    m.hdr.size = size;
    memcpy(&m.payload, payload, size);
    ret = vu_dev_process_msg(f->dev, &m, fds, fd >= 0, reply ? reply : &r,
                             err, sizeof(err));
    if (ret < 0) {
        g_test_message("refused: %s", err);
    }
    return ret;
}

static void u64msg(Fixture *f, uint32_t req, uint64_t v, int fd)
{
    g_assert_cmpint(msg(f, req, &v, 8, fd, NULL), >=, 0);
}

static void state(Fixture *f, uint32_t req, uint32_t idx, uint32_t num)
{
    uint32_t s[2] = { idx, num };

    g_assert_cmpint(msg(f, req, s, 8, -1, NULL), >=, 0);
}

/* A device with queue 0 running, @features acked. */
static void dev_up(Fixture *f, uint64_t features, bool inflight,
                   uint16_t base)
{
    uint64_t pf = 1ull << VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD;
    VuMemTableDesc mt = { .nregions = 1 };
    VuVringAddr addr = {
        .index = 0, .desc_user_addr = UVA + DESC,
        .used_user_addr = UVA + USED, .avail_user_addr = UVA + AVAIL,
    };

    f->dev = vu_dev_new(1, pf, &ops, f);
    u64msg(f, VHOST_USER_SET_FEATURES,
           features | (1ull << VHOST_USER_F_PROTOCOL_FEATURES), -1);
    u64msg(f, VHOST_USER_SET_PROTOCOL_FEATURES, pf, -1);
    mt.regions[0] = (VuMemRegionDesc) { 0, MEM, UVA, 0 };
    g_assert_cmpint(msg(f, VHOST_USER_SET_MEM_TABLE, &mt, 8 + 32,
                        dup(f->memfd), NULL), ==, 0);
    if (inflight) {
        VuInflightMsg in = { .num_queues = 1, .queue_size = QSIZE };
        VuMsg reply;

        if (f->inflight_fd < 0) {
            g_assert_cmpint(msg(f, VHOST_USER_GET_INFLIGHT_FD, &in,
                                sizeof(in), -1, &reply), ==, 1);
            f->inflight_fd = vu_dev_take_reply_fd(f->dev);
            g_assert_cmpint(f->inflight_fd, >=, 0);
            in = reply.payload.inflight;
            f->inflight_size = in.mmap_size;
        } else {
            in.mmap_size = f->inflight_size;
        }
        g_assert_cmpint(msg(f, VHOST_USER_SET_INFLIGHT_FD, &in, sizeof(in),
                            dup(f->inflight_fd), NULL), ==, 0);
    }
    state(f, VHOST_USER_SET_VRING_NUM, 0, QSIZE);
    state(f, VHOST_USER_SET_VRING_BASE, 0, base);
    g_assert_cmpint(msg(f, VHOST_USER_SET_VRING_ADDR, &addr, sizeof(addr), -1,
                        NULL), ==, 0);
    u64msg(f, VHOST_USER_SET_VRING_CALL, 0, dup(f->call));
    u64msg(f, VHOST_USER_SET_VRING_KICK, 0, dup(f->kick));
    g_assert_false(f->running);
    state(f, VHOST_USER_SET_VRING_ENABLE, 0, 1);
    g_assert_true(f->running);
}

static void setup(Fixture *f, gconstpointer data)
{
    f->memfd = memfd_create("guest", MFD_CLOEXEC);
    g_assert_cmpint(ftruncate(f->memfd, MEM), ==, 0);
    f->mem = mmap(NULL, MEM, PROT_READ | PROT_WRITE, MAP_SHARED, f->memfd, 0);
    g_assert_true(f->mem != MAP_FAILED);
    f->kick = eventfd(0, EFD_NONBLOCK);
    f->call = eventfd(0, EFD_NONBLOCK);
    f->inflight_fd = -1;
}

static void teardown(Fixture *f, gconstpointer data)
{
    vu_dev_free(f->dev);
    munmap(f->mem, MEM);
    close(f->memfd);
    close(f->kick);
    close(f->call);
    if (f->inflight_fd >= 0) {
        close(f->inflight_fd);
    }
}

static void desc(Fixture *f, uint64_t table, unsigned i, uint64_t addr,
                 uint32_t len, uint16_t flags, uint16_t next)
{
    uint8_t *p = f->mem + table + 16 * i;

    memcpy(p, &addr, 8);
    memcpy(p + 8, &len, 4);
    memcpy(p + 12, &flags, 2);
    memcpy(p + 14, &next, 2);
}

static void make_avail(Fixture *f, uint16_t head)
{
    uint16_t idx;

    memcpy(&idx, f->mem + AVAIL + 2, 2);
    memcpy(f->mem + AVAIL + 4 + 2 * (idx % QSIZE), &head, 2);
    idx++;
    memcpy(f->mem + AVAIL + 2, &idx, 2);
}

static uint16_t used_idx(Fixture *f)
{
    uint16_t v;

    memcpy(&v, f->mem + USED + 2, 2);
    return v;
}

static bool called(Fixture *f)
{
    eventfd_t v;

    return eventfd_read(f->call, &v) == 0;
}

/* A 3-descriptor request at head @h using descriptors h, h+1, h+2. */
static void request(Fixture *f, uint16_t h)
{
    desc(f, DESC, h, 0x10000 + h * 0x100, 16, 1, h + 1);
    desc(f, DESC, h + 1, 0x20000 + h * 0x1000, 4096, 1 | 2, h + 2);
    desc(f, DESC, h + 2, 0x30000 + h, 1, 2, 0);
    make_avail(f, h);
}

static void test_chain(Fixture *f, gconstpointer data)
{
    char err[256];
    VuVirtq *vq;
    VuElem *e;

    dev_up(f, 0, false, 0);
    vq = vu_dev_get_queue(f->dev, 0);
    g_assert_null(vu_virtq_pop(vq, 0, err, sizeof(err)));
    g_assert_cmpstr(err, ==, "");
    request(f, 3);
    f->mem[0x10300] = 0xab;
    f->mem[0x23000] = 0xcd;
    g_assert_true(vu_virtq_has_work(vq));
    e = vu_virtq_pop(vq, 8, err, sizeof(err));
    g_assert_nonnull(e);
    g_assert_cmpuint(e->head, ==, 3);
    g_assert_cmpuint(e->out_num, ==, 1);
    g_assert_cmpuint(e->in_num, ==, 2);
    /* The same guest bytes, through the back end's own mapping. */
    g_assert_cmpuint(*(uint8_t *)e->out_sg[0].iov_base, ==, 0xab);
    g_assert_cmpuint(e->out_sg[0].iov_len, ==, 16);
    g_assert_cmpuint(*(uint8_t *)e->in_sg[0].iov_base, ==, 0xcd);
    g_assert_cmpuint(e->in_sg[1].iov_len, ==, 1);
    g_assert_nonnull(e->opaque);
    g_assert_cmpuint(vu_virtq_inflight(vq), ==, 1);
    vu_virtq_push(vq, e, 4097);
    g_free(e);
    g_assert_cmpuint(used_idx(f), ==, 1);
    vu_virtq_notify(vq);
    g_assert_true(called(f));
    /* The guest asks for no interrupt. */
    request(f, 0);
    e = vu_virtq_pop(vq, 0, err, sizeof(err));
    f->mem[AVAIL] = 1;
    vu_virtq_push(vq, e, 1);
    g_free(e);
    vu_virtq_notify(vq);
    g_assert_false(called(f));
}

static void test_indirect(Fixture *f, gconstpointer data)
{
    char err[256];
    VuVirtq *vq;
    VuElem *e;

    dev_up(f, 1ull << VIRTIO_RING_F_INDIRECT_DESC, false, 0);
    vq = vu_dev_get_queue(f->dev, 0);
    desc(f, 0x40000, 0, 0x10000, 16, 1, 1);
    desc(f, 0x40000, 1, 0x20000, 512, 1 | 2, 2);
    desc(f, 0x40000, 2, 0x21000, 512, 1 | 2, 3);
    desc(f, 0x40000, 3, 0x30000, 1, 2, 0);
    desc(f, DESC, 5, 0x40000, 64, 4, 0);
    make_avail(f, 5);
    e = vu_virtq_pop(vq, 0, err, sizeof(err));
    g_assert_nonnull(e);
    g_assert_cmpuint(e->head, ==, 5);
    g_assert_cmpuint(e->in_num, ==, 3);
    g_assert_cmpuint(vu_iov_size(e->in_sg, e->in_num), ==, 1025);
    vu_virtq_push(vq, e, 0);
    g_free(e);
    /* A loop inside the indirect table is refused. */
    desc(f, 0x40000, 3, 0x30000, 1, 1 | 2, 1);
    make_avail(f, 5);
    g_assert_null(vu_virtq_pop(vq, 0, err, sizeof(err)));
    g_assert_nonnull(strstr(err, "a loop"));
}

static void test_event_idx(Fixture *f, gconstpointer data)
{
    char err[256];
    VuVirtq *vq;
    uint16_t used_event;

    dev_up(f, 1ull << VIRTIO_RING_F_EVENT_IDX, false, 0);
    vq = vu_dev_get_queue(f->dev, 0);
    /* used_event 1: interrupt once the second request is used. */
    used_event = 1;
    memcpy(f->mem + AVAIL + 4 + 2 * QSIZE, &used_event, 2);
    for (int i = 0; i < 3; i++) {
        VuElem *e;

        request(f, 3 * i);
        e = vu_virtq_pop(vq, 0, err, sizeof(err));
        g_assert_nonnull(e);
        vu_virtq_push(vq, e, 1);
        g_free(e);
        vu_virtq_notify(vq);
        /* The first notify always fires (nothing signalled yet). */
        g_assert_cmpint(called(f), ==, i != 2);
    }
    /* avail_event follows what we popped. */
    {
        uint16_t avail_event;

        memcpy(&avail_event, f->mem + USED + 4 + 8 * QSIZE, 2);
        g_assert_cmpuint(avail_event, ==, 3);
    }
}

/*
 * A back end pops three requests, finishes the second and dies; the next
 * one, given the same in-flight buffer, pops the first and the third
 * again (in the order they were popped) before new ones.
 */
static void test_inflight(Fixture *f, gconstpointer data)
{
    char err[256];
    VuVirtq *vq;
    VuElem *e[3];

    dev_up(f, 0, true, 0);
    vq = vu_dev_get_queue(f->dev, 0);
    request(f, 6);
    request(f, 0);
    request(f, 3);
    for (int i = 0; i < 3; i++) {
        e[i] = vu_virtq_pop(vq, 0, err, sizeof(err));
        g_assert_nonnull(e[i]);
    }
    vu_virtq_push(vq, e[1], 1);
    g_free(e[0]);
    g_free(e[1]);
    g_free(e[2]);
    /* "Killed": nothing else is pushed.  QEMU resumes at the used index. */
    vu_dev_free(f->dev);
    f->running = false;
    dev_up(f, 0, true, used_idx(f));
    vq = vu_dev_get_queue(f->dev, 0);
    request(f, 9);
    for (unsigned want = 0; want < 3; want++) {
        static const unsigned heads[] = { 6, 3, 9 };
        VuElem *x = vu_virtq_pop(vq, 0, err, sizeof(err));

        g_assert_nonnull(x);
        g_assert_cmpuint(x->head, ==, heads[want]);
        vu_virtq_push(vq, x, 1);
        g_free(x);
    }
    g_assert_null(vu_virtq_pop(vq, 0, err, sizeof(err)));
    g_assert_cmpstr(err, ==, "");
    g_assert_cmpuint(used_idx(f), ==, 4);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add("/vhost-user/chain", Fixture, NULL, setup, test_chain,
               teardown);
    g_test_add("/vhost-user/indirect", Fixture, NULL, setup, test_indirect,
               teardown);
    g_test_add("/vhost-user/event-idx", Fixture, NULL, setup,
               test_event_idx, teardown);
    g_test_add("/vhost-user/inflight", Fixture, NULL, setup, test_inflight,
               teardown);
    return g_test_run();
}
