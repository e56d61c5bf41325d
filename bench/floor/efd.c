// Ping-pong over two eventfds: blocking read (./efd 0), or epoll_wait then read (./efd 1).
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/epoll.h>
#include <sys/wait.h>
static uint64_t now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec*1000000000ull+t.tv_nsec;}
static int cmp(const void*a,const void*b){uint64_t x=*(uint64_t*)a,y=*(uint64_t*)b;return x<y?-1:x>y;}
int main(int argc,char**argv){if(argc<2){fprintf(stderr,"usage: %s 0|1\n",argv[0]);return 2;}
 int mode=atoi(argv[1]);int a=eventfd(0,0),b=eventfd(0,0);int n=20000;uint64_t v=1;
 if(!fork()){for(int i=0;i<n+1000;i++){if(read(a,&v,8)!=8)_exit(1);v=1;if(write(b,&v,8)!=8)_exit(1);}_exit(0);}
 int ep=epoll_create1(0);struct epoll_event ev={.events=EPOLLIN};epoll_ctl(ep,EPOLL_CTL_ADD,b,&ev);
 uint64_t*lat=malloc(8*n);
 for(int i=0;i<n+1000;i++){uint64_t t=now();v=1;if(write(a,&v,8)!=8)return 1;
   if(mode==1){struct epoll_event e;epoll_wait(ep,&e,1,-1);} if(read(b,&v,8)!=8)return 1;
   if(i>=1000)lat[i-1000]=now()-t;}
 wait(0);qsort(lat,n,8,cmp);printf("eventfd %s p50=%.2fus p99=%.2fus\n",mode?"epoll":"read",lat[n/2]/1e3,lat[n*99/100]/1e3);}
