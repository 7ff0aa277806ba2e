/* replay.c - run the fuzz targets over corpus files, without libFuzzer.
 *
 *   replay                          both seed corpora of the source tree
 *                                   ($UXP_SRCDIR/tests/fuzz/corpus/{decode,conn});
 *                                   this is what make check runs
 *   replay decode|conn PATH...      files, or every file of directories
 *
 * Descriptors are counted around every input (uxp_fuzz_fdcheck).  A failed
 * check aborts; exit 0 when every input passed, 99 on a usage or I/O error.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "fuzz.h"

static int run_file(const char *path, unsigned *count)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		return -1;
	}
	static uint8_t buf[1 << 16];
	size_t n = fread(buf, 1, sizeof(buf), f);
	int err = ferror(f);
	fclose(f);
	if (err) {
		fprintf(stderr, "replay: %s: read error\n", path);
		return -1;
	}
	/* A copy of exactly n bytes, so that ASan sees reads past the input. */
	uint8_t *copy = malloc(n ? n : 1);
	if (!copy)
		return -1;
	memcpy(copy, buf, n);
	LLVMFuzzerTestOneInput(copy, n);
	free(copy);
	(*count)++;
	return 0;
}

static int cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int run_path(const char *path, unsigned *count)
{
	struct stat st;
	if (stat(path, &st) < 0) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode))
		return run_file(path, count);
	struct dirent **names;
	int n = scandir(path, &names, NULL, NULL);
	if (n < 0) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		return -1;
	}
	qsort(names, (size_t)n, sizeof(*names), cmp);
	int ret = 0;
	unsigned before = *count;
	for (int i = 0; i < n; i++) {
		char file[4096];
		if (names[i]->d_name[0] != '.' && ret == 0) {
			snprintf(file, sizeof(file), "%s/%s", path, names[i]->d_name);
			if (stat(file, &st) == 0 && S_ISREG(st.st_mode))
				ret = run_file(file, count);
		}
		free(names[i]);
	}
	free(names);
	if (ret == 0 && *count == before) {
		fprintf(stderr, "replay: %s: no input files\n", path);
		return -1;
	}
	return ret;
}

static int run_target(const char *target, char **paths, int npaths)
{
	unsigned count = 0;
	if (strcmp(target, "decode") == 0)
		uxp_fuzz_select(UXP_FUZZ_DECODE);
	else if (strcmp(target, "conn") == 0)
		uxp_fuzz_select(UXP_FUZZ_CONN);
	else {
		fprintf(stderr, "replay: unknown target %s (decode or conn)\n", target);
		return -1;
	}
	for (int i = 0; i < npaths; i++)
		if (run_path(paths[i], &count) < 0)
			return -1;
	printf("replay %s: %u inputs passed\n", target, count);
	return 0;
}

int main(int argc, char **argv)
{
	uxp_fuzz_fdcheck = 1;
	int ret = uxp_fuzz_setup();
	if (ret < 0) {
		fprintf(stderr, "replay: set-up failed: %s\n", strerror(-ret));
		return 99;
	}
	if (argc >= 3)
		return run_target(argv[1], argv + 2, argc - 2) < 0 ? 99 : 0;
	if (argc != 1) {
		fprintf(stderr, "usage: replay [decode|conn PATH...]\n");
		return 99;
	}
	const char *src = getenv("UXP_SRCDIR");
	char dec[4096], conn[4096];
	snprintf(dec, sizeof(dec), "%s/tests/fuzz/corpus/decode", src ? src : ".");
	snprintf(conn, sizeof(conn), "%s/tests/fuzz/corpus/conn", src ? src : ".");
	char *d[] = { dec }, *c[] = { conn };
	if (run_target("decode", d, 1) < 0 || run_target("conn", c, 1) < 0)
		return 99;
	return 0;
}
