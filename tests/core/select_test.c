/* select_test.c - transport selection in a fresh process: absent device,
 * XPMEM_TRANSPORT, automatic choice, and the debug log saying why.
 *
 * Selection happens once per process, so every test runs in its own
 * forked process whatever CK_FORK says, and sets its environment first. */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "uxp.h"
#include "uxpmem.h"
#include "kernel.h"
#include "fakekernel.h"
#include "testutil.h"

#define ABSENT "/nonexistent/xpmem"
static char device[] = "/tmp/uxp-seldev.XXXXXX";
static char logfile[] = "/tmp/uxp-sellog.XXXXXX";

static void env_absent(const char *transport)
{
	setenv("XPMEM_KERNEL_DEVICE", ABSENT, 1);
	if (transport)
		setenv("XPMEM_TRANSPORT", transport, 1);
	else
		unsetenv("XPMEM_TRANSPORT");
}

/* Query every transport; return the info of name (fails if missing). */
static struct uxpmem_transport_info query(const char *name)
{
	struct uxpmem_transport_info info, found = { 0 };
	unsigned i;
	for (i = 0; uxpmem_transport_query(i, &info) == 0; i++)
		if (strcmp(info.name, name) == 0)
			found = info;
	ck_assert_int_eq(errno, ENOENT);
	ck_assert_uint_ge(i, 2);
	ck_assert_msg(found.name, "transport %s not listed", name);
	return found;
}

static void log_to_file(const char *level)
{
	tu_log_to(logfile, level);
}

static char *read_log(void)
{
	static char buf[8192];
	tu_read_text(logfile, buf, sizeof(buf));
	return buf;
}

START_TEST(query_reports_absent_device)
{
	env_absent(NULL);
	struct uxpmem_transport_info k = query("kernel");
	ck_assert_int_eq(k.usable, 0);
	ck_assert_msg(strstr(k.why, ABSENT), "why does not name the path: %s", k.why);
	ck_assert_msg(strstr(k.why, strerror(ENOENT)), "why does not say ENOENT: %s", k.why);
	ck_assert_ptr_nonnull(k.description);
	struct uxpmem_transport_info s = query("shm");
	ck_assert_ptr_nonnull(s.description);
	/* Query does not select. */
	ck_assert_ptr_null(uxp_transport_selected());

	struct uxpmem_transport_info info;
	errno = 0;
	ck_assert_int_eq(uxpmem_transport_query(1000, &info), -1);
	ck_assert_int_eq(errno, ENOENT);
	errno = 0;
	ck_assert_int_eq(uxpmem_transport_query(0, NULL), -1);
	ck_assert_int_eq(errno, EINVAL);
}
END_TEST

START_TEST(auto_picks_shm)
{
	env_absent(_i ? "auto" : NULL);
	const char *name = uxpmem_transport_name();
	ck_assert_ptr_nonnull(name);
	ck_assert_str_eq(name, "shm");
	ck_assert_int_ge(xpmem_version(), 0);
}
END_TEST

START_TEST(forced_kernel_absent_fails_enoent)
{
	env_absent("kernel");
	errno = 0;
	ck_assert_int_eq(xpmem_version(), -1);
	ck_assert_int_eq(errno, ENOENT);
	errno = 0;
	ck_assert_int_eq(xpmem_make(NULL, XPMEM_MAXADDR_SIZE, XPMEM_PERMIT_MODE, (void *)0600), -1);
	ck_assert_int_eq(errno, ENOENT);
	errno = 0;
	ck_assert_int_eq(xpmem_init(), -1);
	ck_assert_int_eq(errno, ENOENT);
	errno = 0;
	ck_assert_ptr_null(uxpmem_transport_name());
	ck_assert_int_eq(errno, ENOENT);
	struct xpmem_addr a = { .apid = 1, .offset = 0 };
	errno = 0;
	ck_assert_ptr_eq(xpmem_attach(a, 4096, NULL), (void *)-1);
	ck_assert_int_eq(errno, ENOENT);
}
END_TEST

START_TEST(bogus_transport_enodev)
{
	env_absent("bogus");
	errno = 0;
	ck_assert_int_eq(xpmem_version(), -1);
	ck_assert_int_eq(errno, ENODEV);
	errno = 0;
	ck_assert_int_eq(xpmem_get(1, XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL), -1);
	ck_assert_int_eq(errno, ENODEV);
	errno = 0;
	ck_assert_ptr_null(uxpmem_transport_name());
	ck_assert_int_eq(errno, ENODEV);
	ck_assert_ptr_null(uxp_transport_selected());
}
END_TEST

START_TEST(debug_log_says_why_selection_failed)
{
	env_absent("kernel");
	log_to_file("debug");
	ck_assert_int_eq(xpmem_version(), -1);
	const char *log = read_log();
	char tag[64];
	snprintf(tag, sizeof(tag), "uxpmem[%d] debug: ", (int)getpid());
	ck_assert_msg(strstr(log, tag), "no debug line from this process: %s", log);
	ck_assert_msg(strstr(log, ABSENT), "log does not name the device: %s", log);
	ck_assert_msg(strstr(log, "kernel"), "log does not name the transport: %s", log);
}
END_TEST

START_TEST(debug_log_says_why_a_call_failed)
{
	fk_install();
	setenv("XPMEM_KERNEL_DEVICE", device, 1);
	setenv("XPMEM_TRANSPORT", "kernel", 1);
	log_to_file("debug");
	ck_assert_int_eq(xpmem_get(0, XPMEM_RDWR, XPMEM_PERMIT_MODE, NULL), -1);
	ck_assert_msg(strstr(read_log(), "segid 0"), "no line for get(0): %s", read_log());
	fk_fail_next(EACCES, 0);
	ck_assert_int_eq(xpmem_remove(FK_SEGID), -1);
	ck_assert_int_eq(errno, EACCES);
	ck_assert_msg(strstr(read_log(), strerror(EACCES)), "no line for remove: %s", read_log());
}
END_TEST

START_TEST(default_log_level_is_silent)
{
	env_absent("kernel");
	log_to_file(NULL);
	ck_assert_int_eq(xpmem_make(NULL, 0, XPMEM_PERMIT_MODE, NULL), -1);
	/* Only the selection error is loud; per-call reasons need debug. */
	const char *log = read_log();
	ck_assert_msg(strstr(log, " error: core: XPMEM_TRANSPORT=kernel"), "log: %s", log);
	ck_assert_ptr_null(strstr(log, " debug: "));
	ck_assert_ptr_null(strstr(log, "size 0"));
}
END_TEST

START_TEST(auto_picks_kernel_when_it_answers)
{
	fk_install();
	setenv("XPMEM_KERNEL_DEVICE", device, 1);
	unsetenv("XPMEM_TRANSPORT");
	int nfd = tu_count_fds();
	ck_assert_str_eq(uxpmem_transport_name(), "kernel");
	/* The probe opened, asked VERSION and closed; open() kept one fd. */
	ck_assert_int_eq(fk.opens, 2);
	ck_assert_int_eq(fk.open_flags, O_RDWR | O_CLOEXEC);
	ck_assert_int_eq(fk.ncalls, 1);
	ck_assert_uint_eq(fk.calls[0].req, XPMEM_CMD_VERSION);
	ck_assert_int_eq(tu_count_fds(), nfd + 1);
	ck_assert_int_eq(xpmem_make(NULL, 4096, XPMEM_PERMIT_MODE, (void *)0600), FK_SEGID);
	ck_assert_int_eq(fk.ncalls, 2);
	ck_assert_uint_eq(fk.calls[1].req, XPMEM_CMD_MAKE);
	ck_assert_int_eq(fk.opens, 2);
	struct uxpmem_transport_info k = query("kernel");
	ck_assert_int_eq(k.usable, 1);
	ck_assert_msg(strstr(k.why, device), "details do not name the device: %s", k.why);
}
END_TEST

START_TEST(auto_skips_kernel_not_answering)
{
	fk_install();
	setenv("XPMEM_KERNEL_DEVICE", device, 1);
	unsetenv("XPMEM_TRANSPORT");
	int nfd = tu_count_fds();
	fk_fail_next(ENOTTY, ENOTTY); /* selection probe, then our query */
	ck_assert_str_eq(uxpmem_transport_name(), "shm");
	ck_assert_int_eq(fk.opens, 1);
	ck_assert_int_eq(tu_count_fds(), nfd); /* the probe closed its fd */
	struct uxpmem_transport_info k = query("kernel");
	ck_assert_int_eq(k.usable, 0);
	ck_assert_msg(strstr(k.why, "VERSION"), "why: %s", k.why);
	ck_assert_int_eq(tu_count_fds(), nfd);
}
END_TEST

static Suite *select_suite(void)
{
	Suite *s = suite_create("select");
	TCase *tc = tcase_create("absent");
	tcase_set_timeout(tc, tu_guard_s(10));
	tcase_add_test(tc, query_reports_absent_device);
	tcase_add_loop_test(tc, auto_picks_shm, 0, 2);
	tcase_add_test(tc, forced_kernel_absent_fails_enoent);
	tcase_add_test(tc, bogus_transport_enodev);
	suite_add_tcase(s, tc);
	tc = tcase_create("log");
	tcase_set_timeout(tc, tu_guard_s(10));
	tcase_add_test(tc, debug_log_says_why_selection_failed);
	tcase_add_test(tc, debug_log_says_why_a_call_failed);
	tcase_add_test(tc, default_log_level_is_silent);
	suite_add_tcase(s, tc);
	tc = tcase_create("auto");
	tcase_set_timeout(tc, tu_guard_s(10));
	tcase_add_test(tc, auto_picks_kernel_when_it_answers);
	tcase_add_test(tc, auto_skips_kernel_not_answering);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	int fd = mkstemp(device);
	if (fd < 0)
		return 99;
	close(fd);
	fd = mkstemp(logfile);
	if (fd < 0)
		return 99;
	close(fd);
	/* No plugins from the host: only the built-ins. */
	setenv("XPMEM_PLUGIN_DIR", "/nonexistent/uxpmem-plugins", 1);
	unsetenv("XPMEM_LOG_LEVEL");
	unsetenv("XPMEM_LOG_FILE");
	SRunner *sr = srunner_create(select_suite());
	srunner_set_fork_status(sr, CK_FORK); /* one selection per process */
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	unlink(device);
	unlink(logfile);
	return failed ? 1 : 0;
}
