/* util.c - small helpers shared by the core and the transports. */
#include <signal.h>
#include <time.h>
#include "uxp.h"

int uxp_thread_start(void *(*fn)(void *), void *arg, size_t stack_size)
{
	pthread_t th;
	pthread_attr_t attr;
	sigset_t all, old;

	sigfillset(&all);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (stack_size)
		pthread_attr_setstacksize(&attr, stack_size);
	/* the new thread inherits the mask: signals stay with the application */
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int ret = pthread_create(&th, &attr, fn, arg);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	return -ret;
}

void uxp_deadline(struct timespec *ts, long ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}
