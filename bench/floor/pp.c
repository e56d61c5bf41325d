// Ping-pong between two processes over a shared-memory counter: futex wait/wake, or spin
// first (up to SPIN_NS) and then sleep on the futex.  A writer calls FUTEX_WAKE only when
// the reader said it may sleep (Dekker's pattern, as fastinvoke's csrc/lane.h does), so a
// spin that finds the message costs no system call on either side.
// usage: ./pp SPIN_NS [ROUND_TRIPS]   (-1: never spin; 20000: spin up to 20 us)
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <sys/syscall.h>
#include <linux/futex.h>
#include <stdatomic.h>
typedef struct { _Atomic uint32_t v, sleeping; char pad[56]; } Slot;  // one cache line each
typedef struct { Slot req, rep; } S;
static int spin_ns;
static uint64_t now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec*1000000000ull+t.tv_nsec;}
static int cmp(const void*a,const void*b){uint64_t x=*(uint64_t*)a,y=*(uint64_t*)b;return x<y?-1:x>y;}
static void waitfor(Slot *s, uint32_t v){  // until s->v == v
  uint64_t t0 = spin_ns >= 0 ? now() : 0;
  while (atomic_load(&s->v) != v) {
    if (spin_ns >= 0 && now() - t0 < (uint64_t)spin_ns) { __builtin_ia32_pause(); continue; }
    atomic_store(&s->sleeping, 1);  // seq_cst: the writer sees it, or we see its value
    uint32_t cur = atomic_load(&s->v);
    if (cur != v) syscall(SYS_futex, &s->v, FUTEX_WAIT, cur, NULL, NULL, 0);
    atomic_store(&s->sleeping, 0);
  }
}
static void post(Slot *s, uint32_t v){
  atomic_store(&s->v, v);
  if (atomic_load(&s->sleeping)) syscall(SYS_futex, &s->v, FUTEX_WAKE, 1, NULL, NULL, 0);
}
int main(int argc,char**argv){
  if(argc<2){fprintf(stderr,"usage: %s SPIN_NS [ROUND_TRIPS]\n",argv[0]);return 2;}
  spin_ns=atoi(argv[1]); int n=argc>2?atoi(argv[2]):20000;
  S*s=mmap(0,sizeof(S),PROT_READ|PROT_WRITE,MAP_SHARED|MAP_ANONYMOUS,-1,0);  // zeroed
  if(!fork()){ for(uint32_t i=1;i<=(uint32_t)n+1000;i++){ waitfor(&s->req,i); post(&s->rep,i);} _exit(0);}
  uint64_t*lat=malloc(8*n);
  for(uint32_t i=1;i<=(uint32_t)n+1000;i++){ uint64_t t=now(); post(&s->req,i); waitfor(&s->rep,i); if(i>1000) lat[i-1001]=now()-t; }
  wait(0); qsort(lat,n,8,cmp);
  printf("futex, spin_ns=%d p50=%.2fus p99=%.2fus\n",spin_ns,lat[n/2]/1e3,lat[n*99/100]/1e3);
}
