/* Linux calls that Glibc's Swift module hides behind _GNU_SOURCE or leaves out (sendmmsg and
 * recvmmsg with their message header, epoll, pthread_setname_np), declared under Atrium names
 * bound to the C library's symbols. The structs repeat the Linux layouts (struct msghdr, struct
 * mmsghdr, struct epoll_event) so this header includes no system header that Glibc's module
 * already owns. */
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

/* The corresponding C function is recvmmsg(2); `timeout` is a struct timespec pointer (NULL: none). */
int atrium_recvmmsg(int fd, struct atrium_mmsghdr *messages, unsigned int count, int flags, void *timeout) __asm__("recvmmsg");

/* struct epoll_event, packed on x86-64 as <sys/epoll.h> declares it there (12 bytes), natural
 * elsewhere (16). `data` is the union's 64-bit member. */
#if defined(__x86_64__)
struct __attribute__((packed)) atrium_epoll_event {
#else
struct atrium_epoll_event {
#endif
    unsigned int events;
    unsigned long long data;
};

/* The corresponding C functions are epoll_create1(2), epoll_ctl(2) and epoll_wait(2). */
int atrium_epoll_create1(int flags) __asm__("epoll_create1");
int atrium_epoll_ctl(int epfd, int op, int fd, struct atrium_epoll_event *event) __asm__("epoll_ctl");
int atrium_epoll_wait(int epfd, struct atrium_epoll_event *events, int count, int timeout) __asm__("epoll_wait");

/* pthread_setname_np(3): names a thread (15 bytes and the NUL) for top, ps and perf. pthread_t is
 * an unsigned long on Linux. */
int atrium_pthread_setname_np(unsigned long thread, const char *name) __asm__("pthread_setname_np");

#endif
