/* One direction of a worker's shared-memory link: a message slot in a memfd (requests),
 * or a ring of them (replies: see *ring* below).
 *
 * The file is a header page followed by the data area.  One process writes (the front-end
 * for requests, the worker for replies), one reads.  The front-end sends a request only
 * once the worker has taken the last one, so a request slot never holds more than one
 * unread message.
 *
 * Publishing: the writer copies the message into the data area, stores its length, then
 * increments ``seq`` (release).  A reader that sees ``seq`` move reads a whole message: a
 * writer that dies mid-copy never publishes, so a torn message is never read.
 *
 * Wake-ups (eventfd): a reader about to sleep stores ``sleeping = 1`` and re-reads
 * ``seq``; a writer stores ``seq`` and then reads ``sleeping``.  Both are sequentially
 * consistent, so at least one of them sees the other (Dekker's pattern): either the
 * reader finds the message, or the writer writes the eventfd.  The front-end waits for
 * all its workers' replies at once, so its flag is not a lane's but a shared "doorbell"
 * word: a count of its waiters (a sleeping thread, a watching event loop), each of which
 * raises it before its last look at the lanes and lowers it once awake.
 *
 * ``taken`` is the reader's acknowledgement: the ``seq`` of the last message it has
 * copied out.  After a reader's death the writer knows whether its last message was ever
 * read (an invocation that never started can go to another worker, not fail).
 *
 * Growth: a message larger than the data area makes the writer grow the file and its
 * mapping first (``capacity`` in the header says how much the file holds); the reader
 * grows its own mapping when it sees a larger capacity.  The header page is a mapping of
 * its own that never moves, so a thread may spin on it while another grows the data.
 *
 * A *ring* (``ring`` set when the file is made: a worker's replies) holds several
 * messages, so that a worker given invocations ahead never waits for the front-end to
 * take one reply before it publishes the next.  Then ``seq`` counts the bytes written
 * and ``taken`` the bytes read; each message is a frame (its length in 8 bytes, then
 * the message, padded to 8) at ``seq`` modulo the capacity (a power of two), wrapping
 * around.  A writer finding too little room waits (``EAGAIN``); one whose message is
 * larger than the whole ring grows it once the reader has taken everything, so no unread
 * frame ever moves.  Readiness, sleeping and ``taken`` keep their meaning: a message
 * waits while ``seq`` differs from what the reader has seen; ``taken == seq`` when every
 * one was read.
 */
#ifndef FASTINVOKE_LANE_H
#define FASTINVOKE_LANE_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE  /* mremap */
#endif
#include <errno.h>
#include <sched.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define FI_LANE_HEADER 4096

typedef struct {
    uint64_t seq;       /* messages published */
    uint64_t length;    /* bytes of the latest message */
    uint64_t capacity;  /* bytes of the data area the file holds */
    uint32_t ring;      /* it holds several messages (see above) */
    char pad0[36];
    uint64_t taken;     /* the reader's ack: seq of the last message it copied out */
    char pad1[56];
    uint32_t sleeping;  /* the reader may be asleep on its eventfd */
} fi_lane_header;

typedef struct {
    fi_lane_header *h;  /* the header page's own mapping */
    char *data;         /* the data area's mapping */
    size_t mapped;      /* bytes of data mapped */
    int fd;             /* the memfd */
    int ring;           /* the header's ``ring``, read once */
    uint64_t seen;      /* reader: seq of the last message read; writer: last published */
} fi_lane;

static inline void fi_pause(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static inline uint64_t fi_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Map ``fd`` (whose header is initialised) for its reader or its writer; 0 or an errno.
 * A reader starts after the last message taken, so none published before it mapped the
 * lane is missed. */
static inline int fi_lane_map(fi_lane *lane, int fd, int reader) {
    void *header = mmap(NULL, FI_LANE_HEADER, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (header == MAP_FAILED)
        return errno;
    fi_lane_header *h = header;
    size_t size = h->capacity;
    void *data = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, FI_LANE_HEADER);
    if (data == MAP_FAILED) {
        int err = errno;
        munmap(header, FI_LANE_HEADER);
        return err;
    }
    lane->h = h;
    lane->data = data;
    lane->mapped = size;
    lane->fd = fd;
    lane->ring = h->ring != 0;
    lane->seen = __atomic_load_n(reader ? &h->taken : &h->seq, __ATOMIC_ACQUIRE);
    return 0;
}

/* Unmap the data area (the header stays until fi_lane_unmap_header). */
static inline void fi_lane_unmap_data(fi_lane *lane) {
    if (lane->data != NULL)
        munmap(lane->data, lane->mapped);
    lane->data = NULL;
    lane->mapped = 0;
}

static inline void fi_lane_unmap_header(fi_lane *lane) {
    if (lane->h != NULL)
        munmap(lane->h, FI_LANE_HEADER);
    lane->h = NULL;
}

/* Make the data mapping cover ``capacity`` bytes; 0 or an errno. */
static inline int fi_lane_cover(fi_lane *lane, uint64_t capacity) {
    if (capacity <= lane->mapped)
        return 0;
    void *data = mremap(lane->data, lane->mapped, capacity, MREMAP_MAYMOVE);
    if (data == MAP_FAILED)
        return errno;
    lane->data = data;
    lane->mapped = capacity;
    return 0;
}

/* Writer: copy ``length`` bytes in and publish them; returns 0, or an errno (nothing
 * published).  ``wake_fd`` is written when the reader may be asleep: when ``*wake_flag``
 * (the lane's ``sleeping``, or the reader's doorbell) is not 0. */
static inline int fi_lane_publish(fi_lane *lane, const char *data, uint64_t length,
                                  int wake_fd, const uint32_t *wake_flag) {
    fi_lane_header *h = lane->h;
    if (length > h->capacity) {
        uint64_t capacity = h->capacity * 2;
        if (capacity < length)
            capacity = (length + 4095) & ~(uint64_t)4095;
        if (ftruncate(lane->fd, (off_t)(FI_LANE_HEADER + capacity)) != 0)
            return errno;
        int err = fi_lane_cover(lane, capacity);
        if (err)
            return err;
        h->capacity = capacity;
    }
    memcpy(lane->data, data, length);
    h->length = length;
    lane->seen += 1;
    __atomic_store_n(&h->seq, lane->seen, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(wake_flag, __ATOMIC_SEQ_CST)) {
        uint64_t one = 1;
        while (write(wake_fd, &one, sizeof one) < 0 && errno == EINTR) {
        }
    }
    return 0;
}

/* Ring: the bytes a frame of a ``length``-byte message takes. */
static inline uint64_t fi_ring_frame(uint64_t length) {
    return (8 + length + 7) & ~(uint64_t)7;
}

/* Ring writer: append ``length`` bytes as one message and publish it; 0, EAGAIN (no room
 * until the reader takes some: nothing written) or an errno. */
static inline int fi_ring_publish(fi_lane *lane, const char *data, uint64_t length,
                                  int wake_fd, const uint32_t *wake_flag) {
    fi_lane_header *h = lane->h;
    uint64_t need = fi_ring_frame(length);
    uint64_t head = lane->seen;
    uint64_t tail = __atomic_load_n(&h->taken, __ATOMIC_ACQUIRE);
    uint64_t capacity = h->capacity;
    if (need > capacity - (head - tail)) {
        if (head != tail || need <= capacity)
            return EAGAIN;
        uint64_t grown = capacity * 2;
        while (grown < need)
            grown *= 2;
        if (ftruncate(lane->fd, (off_t)(FI_LANE_HEADER + grown)) != 0)
            return errno;
        int err = fi_lane_cover(lane, grown);
        if (err)
            return err;
        /* Published with the next seq: a reader loads it only after seeing that move. */
        __atomic_store_n(&h->capacity, grown, __ATOMIC_RELEASE);
        capacity = grown;
    }
    uint64_t mask = capacity - 1, at = (head + 8) & mask, first = capacity - at;
    memcpy(lane->data + (head & mask), &length, 8);  /* 8-aligned: never wraps */
    if (length <= first) {
        memcpy(lane->data + at, data, length);
    } else {
        memcpy(lane->data + at, data, first);
        memcpy(lane->data, data + first, length - first);
    }
    lane->seen = head + need;
    __atomic_store_n(&h->seq, lane->seen, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(wake_flag, __ATOMIC_SEQ_CST)) {
        uint64_t one = 1;
        while (write(wake_fd, &one, sizeof one) < 0 && errno == EINTR) {
        }
    }
    return 0;
}

/* Ring reader: the next message's length, the ring mapped whole (0 or an errno in *err). */
static inline uint64_t fi_ring_peek(fi_lane *lane, int *err) {
    uint64_t capacity = __atomic_load_n(&lane->h->capacity, __ATOMIC_ACQUIRE);
    uint64_t length;
    *err = fi_lane_cover(lane, capacity);
    if (*err)
        return 0;
    memcpy(&length, lane->data + (lane->seen & (capacity - 1)), 8);
    return length;
}

/* Ring reader: copy the next message (``length`` bytes, from fi_ring_peek) out, and
 * take it. */
static inline void fi_ring_take(fi_lane *lane, char *out, uint64_t length) {
    uint64_t capacity = lane->h->capacity;  /* as fi_ring_peek loaded it */
    uint64_t mask = capacity - 1, at = (lane->seen + 8) & mask, first = capacity - at;
    if (length <= first) {
        memcpy(out, lane->data + at, length);
    } else {
        memcpy(out, lane->data + at, first);
        memcpy(out + first, lane->data, length - first);
    }
    lane->seen += fi_ring_frame(length);
    __atomic_store_n(&lane->h->taken, lane->seen, __ATOMIC_RELEASE);
}

/* Reader: whether a message is waiting. */
static inline int fi_lane_ready(fi_lane *lane) {
    return __atomic_load_n(&lane->h->seq, __ATOMIC_ACQUIRE) != lane->seen;
}

/* Reader: the waiting message's length, its data mapped (0 or an errno in *err). */
static inline uint64_t fi_lane_peek(fi_lane *lane, int *err) {
    fi_lane_header *h = lane->h;
    *err = fi_lane_cover(lane, __atomic_load_n(&h->capacity, __ATOMIC_ACQUIRE));
    return lane->h->length;
}

/* Reader: the message has been copied out. */
static inline void fi_lane_consume(fi_lane *lane) {
    lane->seen += 1;
    __atomic_store_n(&lane->h->taken, lane->seen, __ATOMIC_RELEASE);
}

/* Reader: spin until a message waits or ``spin_ns`` pass; returns whether one waits.
 * Past the first FI_SPIN_ALONE_NS the spinner yields its CPU on every round, so on a
 * machine with more runnable processes than cores it never holds up the one that will
 * send the message. */
#define FI_SPIN_ALONE_NS 2000

static inline int fi_lane_spin(fi_lane *lane, uint64_t spin_ns) {
    if (fi_lane_ready(lane))
        return 1;
    if (spin_ns == 0)
        return 0;
    uint64_t start = fi_now_ns(), now = start;
    for (;;) {
        for (int i = 0; i < 32; i++) {
            if (fi_lane_ready(lane))
                return 1;
            fi_pause();
        }
        now = fi_now_ns();
        if (now - start >= spin_ns)
            return fi_lane_ready(lane);
        if (now - start >= FI_SPIN_ALONE_NS)
            sched_yield();
    }
}

/* Reader: block on ``wake_fd`` until a message waits; 0 or an errno. */
static inline int fi_lane_sleep(fi_lane *lane, int wake_fd) {
    fi_lane_header *h = lane->h;
    uint64_t count;
    for (;;) {
        __atomic_store_n(&h->sleeping, 1, __ATOMIC_SEQ_CST);
        if (__atomic_load_n(&h->seq, __ATOMIC_SEQ_CST) != lane->seen)
            break;
        if (read(wake_fd, &count, sizeof count) < 0 && errno != EINTR && errno != EAGAIN)
            return errno;
    }
    __atomic_store_n(&h->sleeping, 0, __ATOMIC_RELAXED);
    return 0;
}

/* Writer: whether the reader has copied out the last published message. */
static inline int fi_lane_taken(fi_lane *lane) {
    return __atomic_load_n(&lane->h->taken, __ATOMIC_ACQUIRE) == lane->seen;
}

/* The doorbell: raise before a reader's last look at its lanes, lower once awake. */
static inline void fi_bell_raise(uint32_t *bell) {
    __atomic_add_fetch(bell, 1, __ATOMIC_SEQ_CST);
}

static inline void fi_bell_lower(uint32_t *bell) {
    __atomic_sub_fetch(bell, 1, __ATOMIC_SEQ_CST);
}

#endif
