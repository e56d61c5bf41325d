// Ping-pong over an AF_UNIX SOCK_SEQPACKET pair: what a socket hop costs.  usage: ./udsc
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/wait.h>
static uint64_t now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec*1000000000ull+t.tv_nsec;}
static int cmp(const void*a,const void*b){uint64_t x=*(uint64_t*)a,y=*(uint64_t*)b;return x<y?-1:x>y;}
int main(){int sv[2];socketpair(AF_UNIX,SOCK_SEQPACKET,0,sv);int n=20000;char buf[64]={0};
 if(!fork()){close(sv[0]);for(int i=0;i<n+1000;i++){int r=recv(sv[1],buf,64,0);send(sv[1],buf,r,0);}_exit(0);}
 close(sv[1]);uint64_t*lat=malloc(8*n);
 for(int i=0;i<n+1000;i++){uint64_t t=now();send(sv[0],buf,32,0);recv(sv[0],buf,64,0);if(i>=1000)lat[i-1000]=now()-t;}
 wait(0);qsort(lat,n,8,cmp);printf("C UDS p50=%.2fus p99=%.2fus\n",lat[n/2]/1e3,lat[n*99/100]/1e3);}
