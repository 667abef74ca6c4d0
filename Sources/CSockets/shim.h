/* Linux calls that Glibc's Swift module hides behind _GNU_SOURCE (sendmmsg with its message
 * header, pthread_setname_np), declared under Atrium names bound to the C library's symbols.
 * The structs repeat the Linux layouts (struct msghdr, struct mmsghdr) so this header includes
 * no system header that Glibc's module already owns. */
#ifndef ATRIUM_CSOCKETS_SHIM_H
#define ATRIUM_CSOCKETS_SHIM_H

#include <stddef.h>

/* struct msghdr (iovec pointer untyped). */
struct atrium_msghdr {
    void *msg_name;
    unsigned int msg_namelen;
    void *msg_iov;
    size_t msg_iovlen;
    void *msg_control;
    size_t msg_controllen;
    int msg_flags;
};

/* struct mmsghdr. */
struct atrium_mmsghdr {
    struct atrium_msghdr msg_hdr;
    unsigned int msg_len;
};

/* The corresponding C function is sendmmsg(2). */
int atrium_sendmmsg(int fd, struct atrium_mmsghdr *messages, unsigned int count, int flags) __asm__("sendmmsg");

/* pthread_setname_np(3): names a thread (15 bytes and the NUL) for top, ps and perf. pthread_t is
 * an unsigned long on Linux. */
int atrium_pthread_setname_np(unsigned long thread, const char *name) __asm__("pthread_setname_np");

#endif
