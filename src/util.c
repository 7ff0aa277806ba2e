/* util.c - small helpers shared by the core and the transports. */
#include <signal.h>
#include <time.h>
#include <semaphore.h>
#include "uxp.h"

struct start {
	void *(*fn)(void *);
	void *arg;
	sem_t registered;
};

/* Library threads say who they are before uxp_thread_start() returns: a
 * freeze (src/freeze.c) neither stops nor waits for them. */
static void *library_thread(void *v)
{
	struct start *s = v;
	void *(*fn)(void *) = s->fn;
	void *arg = s->arg;
	uxp_thread_register_self();
	sem_post(&s->registered); /* s is gone after this */
	void *ret = fn(arg);
	uxp_thread_unregister_self();
	return ret;
}

int uxp_thread_start(void *(*fn)(void *), void *arg, size_t stack_size)
{
	return uxp_thread_start_id(fn, arg, stack_size, NULL);
}

int uxp_thread_start_id(void *(*fn)(void *), void *arg, size_t stack_size, pthread_t *id)
{
	pthread_t th;
	pthread_attr_t attr;
	sigset_t all, old;
	struct start s = { .fn = fn, .arg = arg };

	sem_init(&s.registered, 0, 0);
	sigfillset(&all);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (stack_size)
		pthread_attr_setstacksize(&attr, stack_size);
	/* the new thread inherits the mask: signals stay with the application */
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int ret = pthread_create(&th, &attr, library_thread, &s);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	while (ret == 0 && sem_wait(&s.registered) < 0)
		; /* EINTR */
	if (ret == 0 && id)
		*id = th;
	sem_destroy(&s.registered);
	return -ret;
}
