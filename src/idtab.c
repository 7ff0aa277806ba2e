/* idtab.c - sharded, thread-safe map from 64-bit ids to objects. */
#include <stdlib.h>
#include <string.h>
#include "uxp.h"

struct uxp_idtab_node {
	struct uxp_idtab_node *next;
	uint64_t key;
	void *obj;
};

static inline uint64_t mix(uint64_t k)
{
	/* splitmix64 finaliser: ids differ mostly in low bits */
	k ^= k >> 30;
	k *= UINT64_C(0xbf58476d1ce4e5b9);
	k ^= k >> 27;
	k *= UINT64_C(0x94d049bb133111eb);
	k ^= k >> 31;
	return k;
}

static inline struct uxp_idtab_shard *shard_of(struct uxp_idtab *t, uint64_t h)
{
	return &t->shard[h % UXP_IDTAB_SHARDS];
}

static inline size_t bucket_of(const struct uxp_idtab_shard *s, uint64_t h)
{
	return (size_t)(h / UXP_IDTAB_SHARDS) & (s->nbuckets - 1);
}

void uxp_idtab_init(struct uxp_idtab *t)
{
	memset(t, 0, sizeof(*t));
	for (unsigned i = 0; i < UXP_IDTAB_SHARDS; i++)
		pthread_mutex_init(&t->shard[i].lock, NULL);
}

static int grow(struct uxp_idtab_shard *s)
{
	size_t n = s->nbuckets ? s->nbuckets * 2 : 8;
	struct uxp_idtab_node **b = calloc(n, sizeof(*b));
	if (!b)
		return -ENOMEM;
	for (size_t i = 0; i < s->nbuckets; i++) {
		struct uxp_idtab_node *e = s->buckets[i], *next;
		for (; e; e = next) {
			next = e->next;
			size_t j = (size_t)(mix(e->key) / UXP_IDTAB_SHARDS) & (n - 1);
			e->next = b[j];
			b[j] = e;
		}
	}
	free(s->buckets);
	s->buckets = b;
	s->nbuckets = n;
	return 0;
}

void uxp_idtab_lock(struct uxp_idtab *t, uint64_t key)
{
	pthread_mutex_lock(&shard_of(t, mix(key))->lock);
}

void uxp_idtab_unlock(struct uxp_idtab *t, uint64_t key)
{
	pthread_mutex_unlock(&shard_of(t, mix(key))->lock);
}

int uxp_idtab_insert_locked(struct uxp_idtab *t, uint64_t key, void *obj)
{
	uint64_t h = mix(key);
	struct uxp_idtab_shard *s = shard_of(t, h);
	int ret;

	if (s->count >= s->nbuckets && (ret = grow(s)) < 0)
		return ret;
	for (struct uxp_idtab_node *e = s->buckets[bucket_of(s, h)]; e; e = e->next)
		if (e->key == key)
			return -EEXIST;
	struct uxp_idtab_node *n = malloc(sizeof(*n));
	if (!n)
		return -ENOMEM;
	n->key = key;
	n->obj = obj;
	n->next = s->buckets[bucket_of(s, h)];
	s->buckets[bucket_of(s, h)] = n;
	s->count++;
	return 0;
}

void *uxp_idtab_get_locked(struct uxp_idtab *t, uint64_t key)
{
	uint64_t h = mix(key);
	struct uxp_idtab_shard *s = shard_of(t, h);

	if (s->nbuckets)
		for (struct uxp_idtab_node *e = s->buckets[bucket_of(s, h)]; e; e = e->next)
			if (e->key == key)
				return e->obj;
	return NULL;
}

void *uxp_idtab_remove_locked(struct uxp_idtab *t, uint64_t key, void *match)
{
	uint64_t h = mix(key);
	struct uxp_idtab_shard *s = shard_of(t, h);

	if (!s->nbuckets)
		return NULL;
	for (struct uxp_idtab_node **pe = &s->buckets[bucket_of(s, h)]; *pe; pe = &(*pe)->next)
		if ((*pe)->key == key && (!match || (*pe)->obj == match)) {
			struct uxp_idtab_node *found = *pe;
			void *obj = found->obj;
			*pe = found->next;
			s->count--;
			free(found);
			return obj;
		}
	return NULL;
}

int uxp_idtab_insert(struct uxp_idtab *t, uint64_t key, void *obj)
{
	uxp_idtab_lock(t, key);
	int ret = uxp_idtab_insert_locked(t, key, obj);
	uxp_idtab_unlock(t, key);
	return ret;
}

void *uxp_idtab_get(struct uxp_idtab *t, uint64_t key, void (*hold)(void *))
{
	uxp_idtab_lock(t, key);
	void *obj = uxp_idtab_get_locked(t, key);
	if (obj && hold)
		hold(obj);
	uxp_idtab_unlock(t, key);
	return obj;
}

void *uxp_idtab_remove(struct uxp_idtab *t, uint64_t key, void *match)
{
	uxp_idtab_lock(t, key);
	void *obj = uxp_idtab_remove_locked(t, key, match);
	uxp_idtab_unlock(t, key);
	return obj;
}

int uxp_idtab_foreach(struct uxp_idtab *t, int (*fn)(uint64_t, void *, void *), void *arg)
{
	for (unsigned i = 0; i < UXP_IDTAB_SHARDS; i++) {
		struct uxp_idtab_shard *s = &t->shard[i];
		int ret = 0;
		pthread_mutex_lock(&s->lock);
		for (size_t b = 0; b < s->nbuckets && !ret; b++)
			for (struct uxp_idtab_node *e = s->buckets[b]; e && !ret; e = e->next)
				ret = fn(e->key, e->obj, arg);
		pthread_mutex_unlock(&s->lock);
		if (ret)
			return ret;
	}
	return 0;
}

size_t uxp_idtab_count(struct uxp_idtab *t)
{
	size_t n = 0;
	for (unsigned i = 0; i < UXP_IDTAB_SHARDS; i++) {
		pthread_mutex_lock(&t->shard[i].lock);
		n += t->shard[i].count;
		pthread_mutex_unlock(&t->shard[i].lock);
	}
	return n;
}

static void free_nodes(struct uxp_idtab_shard *s, void (*free_obj)(void *))
{
	for (size_t b = 0; b < s->nbuckets; b++) {
		struct uxp_idtab_node *e = s->buckets[b], *next;
		for (; e; e = next) {
			next = e->next;
			if (free_obj)
				free_obj(e->obj);
			free(e);
		}
	}
	free(s->buckets);
	s->buckets = NULL;
	s->nbuckets = 0;
	s->count = 0;
}

void uxp_idtab_reset_after_fork(struct uxp_idtab *t, void (*free_obj)(void *))
{
	/* Single-threaded here; the parent's lock owners do not exist. */
	for (unsigned i = 0; i < UXP_IDTAB_SHARDS; i++) {
		pthread_mutex_init(&t->shard[i].lock, NULL);
		free_nodes(&t->shard[i], free_obj);
	}
}

void uxp_idtab_destroy(struct uxp_idtab *t)
{
	for (unsigned i = 0; i < UXP_IDTAB_SHARDS; i++) {
		free_nodes(&t->shard[i], NULL);
		pthread_mutex_destroy(&t->shard[i].lock);
	}
}
