/*
 * libFuzzer target: the vhost-user back end of plugins/lib/vhost-user,
 * its message parser and its split-virtqueue walker.
 *
 * Each input drives one device (two queues) from a fresh start, as one
 * front-end connection would, through a sequence of records; byte 0 of
 * each record says what it is (low 2 bits):
 *   0  a message: 12 header bytes then the payload (as long as the
 *      header says, cut to what the input has).  The descriptors it
 *      comes with are made up as a front end would send them: a copy of
 *      the guest memory memfd per region of SET_MEM_TABLE and for
 *      ADD_MEM_REG and SET_INFLIGHT_FD (so the in-flight buffer is guest
 *      memory too: the input can write it), an eventfd for SET_VRING_KICK/CALL/ERR without the
 *      no-fd bit; bit 2 of the record byte adds one more memfd, bit 3
 *      withholds the last one.
 *   1  a write into guest memory: 2 bytes offset, 1 byte length, data.
 *   2  the guest kicks queue (bit 2): every available request is
 *      popped and pushed back (with its bytes), then the guest is
 *      notified as it asked.
 *   3  a write of the header bytes of every element's buffers (the
 *      device writing into guest memory), on the next kick.
 * A message the library refuses ends the input, as it ends a connection.
 * Guest memory is a 64 KiB memfd; the front end's addresses of it are
 * whatever the input's SET_MEM_TABLE says.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vhost-user.h"

#define GUEST_MEM (64 * 1024)

static int memfd = -1;
static bool queue_on[2];

static uint64_t f_get_features(VuDev *dev)
{
    return 0x7e46ull;
}

static bool f_get_config(VuDev *dev, uint8_t *buf, uint32_t offset,
                         uint32_t size)
{
    memset(buf, 0xa5, size);
    return offset < 60;
}

static bool f_set_config(VuDev *dev, const uint8_t *data, uint32_t offset,
                         uint32_t size, uint32_t flags)
{
    return offset == 32 && size == 1;
}

static void f_queue_start(VuDev *dev, unsigned q)
{
    queue_on[q] = true;
}

static void f_queue_stop(VuDev *dev, unsigned q)
{
    queue_on[q] = false;
}

static const VuDevOps ops = {
    .get_features = f_get_features,
    .get_config = f_get_config,
    .set_config = f_set_config,
    .queue_start = f_queue_start,
    .queue_stop = f_queue_stop,
};

static void kick(VuDev *dev, unsigned q, bool write_back)
{
    VuVirtq *vq = vu_dev_get_queue(dev, q);
    char err[256];

    for (int round = 0; round < 2 && queue_on[q]; round++) {
        VuElem *elem;

        for (int n = 0; n < 64; n++) {
            uint32_t len = 0;

            elem = vu_virtq_pop(vq, 16, err, sizeof(err));
            if (!elem) {
                break;
            }
            /* The element's buffers must be inside guest memory. */
            for (unsigned i = 0; i < elem->out_num; i++) {
                volatile const uint8_t *p = elem->out_sg[i].iov_base;

                if (elem->out_sg[i].iov_len) {
                    (void)p[0];
                    (void)p[elem->out_sg[i].iov_len - 1];
                }
            }
            for (unsigned i = 0; i < elem->in_num; i++) {
                uint8_t *p = elem->in_sg[i].iov_base;

                if (write_back && elem->in_sg[i].iov_len) {
                    p[0] = 0;
                    p[elem->in_sg[i].iov_len - 1] = 0;
                }
                len += elem->in_sg[i].iov_len;
            }
            vu_virtq_push(vq, elem, len);
            g_free(elem);
        }
        if (err[0]) {
            return;
        }
        vu_virtq_notify(vq);
        if (!vu_virtq_enable_notification(vq)) {
            break;
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    VuDev *dev;
    size_t pos = 0;
    bool write_back = false;

    if (memfd < 0) {
        memfd = memfd_create("guest", MFD_CLOEXEC);
        if (memfd < 0 || ftruncate(memfd, GUEST_MEM) < 0) {
            abort();
        }
    }
    /* Fresh guest memory for every input. */
    if (ftruncate(memfd, 0) < 0 || ftruncate(memfd, GUEST_MEM) < 0) {
        abort();
    }
    queue_on[0] = queue_on[1] = false;
    dev = vu_dev_new(2, (1ull << VHOST_USER_PROTOCOL_F_MQ) |
                     (1ull << VHOST_USER_PROTOCOL_F_CONFIG) |
                     (1ull << VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD),
                     &ops, NULL);

    while (pos < size) {
        uint8_t kind = data[pos++];

        switch (kind & 3) {
        case 0: {
            VuMsg msg, reply;
            int fds[VU_MAX_FDS + 1];
            int nfds = 0, want = 0;
            char err[256];
            size_t n;
            bool efd = false;

            memset(&msg, 0, sizeof(msg));
            n = MIN(sizeof(msg.hdr), size - pos);
            memcpy(&msg.hdr, data + pos, n);
            pos += n;
            if (!vu_msg_check_header(&msg.hdr, err, sizeof(err))) {
                goto out;
            }
            n = MIN(msg.hdr.size, size - pos);
            memcpy(&msg.payload, data + pos, n);
            pos += n;
            switch (msg.hdr.request) {
            case VHOST_USER_SET_MEM_TABLE:
                want = MIN(msg.payload.memory.nregions, VU_MAX_FDS);
                break;
            case VHOST_USER_ADD_MEM_REG:
            case VHOST_USER_SET_INFLIGHT_FD:
                want = 1;
                break;
            case VHOST_USER_SET_VRING_KICK:
            case VHOST_USER_SET_VRING_CALL:
            case VHOST_USER_SET_VRING_ERR:
                want = !(msg.payload.u64 & VHOST_USER_VRING_NOFD_MASK);
                efd = true;
                break;
            }
            if (kind & 4) {
                want++;
            }
            if ((kind & 8) && want > 0) {
                want--;
            }
            want = MIN(want, VU_MAX_FDS);
            for (int i = 0; i < want; i++) {
                fds[nfds++] = efd ? eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)
                                  : dup(memfd);
            }
            if (vu_dev_process_msg(dev, &msg, fds, nfds, &reply, err,
                                   sizeof(err)) < 0) {
                goto out;
            }
            {
                int rfd = vu_dev_take_reply_fd(dev);

                if (rfd >= 0) {
                    close(rfd);
                }
            }
            break;
        }
        case 1: {
            uint16_t off;
            uint8_t len;

            if (size - pos < 3) {
                goto out;
            }
            memcpy(&off, data + pos, 2);
            len = data[pos + 2];
            pos += 3;
            len = MIN(len, size - pos);
            if (pwrite(memfd, data + pos, len, off) < 0) {
                abort();
            }
            pos += len;
            break;
        }
        case 2:
            kick(dev, (kind >> 2) & 1, write_back);
            break;
        case 3:
            write_back = true;
            break;
        }
    }
out:
    vu_dev_free(dev);
    return 0;
}
