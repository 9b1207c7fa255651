/*
 * In the guest: make a range of a block device read as zeroes, so that
 * its driver sends WRITE_ZEROES: "punch" (fallocate PUNCH_HOLE, which
 * Linux turns into WRITE_ZEROES with the unmap flag) or "zeroout"
 * (BLKZEROOUT, WRITE_ZEROES without it).
 *   vm-blkzero punch|zeroout DEVICE OFFSET LENGTH
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    uint64_t range[2];
    int fd, ret;

    if (argc != 5) {
        fprintf(stderr, "usage: %s punch|zeroout DEVICE OFFSET LENGTH\n",
                argv[0]);
        return 2;
    }
    fd = open(argv[2], O_RDWR);
    if (fd < 0) {
        perror(argv[2]);
        return 1;
    }
    range[0] = strtoull(argv[3], NULL, 0);
    range[1] = strtoull(argv[4], NULL, 0);
    if (strcmp(argv[1], "punch") == 0) {
        ret = fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                        range[0], range[1]);
    } else {
        ret = ioctl(fd, BLKZEROOUT, range);
    }
    if (ret < 0) {
        perror(argv[1]);
        return 1;
    }
    return 0;
}
