/*
 * posix/service.c - the service commands of os.h, which are for Windows:
 * systemd runs the foreground server as it is (Type=simple), and
 * --service detaches (os_daemonize in posix/os.c).
 */
#include "os.h"

#include <stdio.h>

static const char no_services[] =
        "service commands are for Windows; use systemd (see README) or --service to detach";

static int no_service(char *err, size_t errlen)
{
	snprintf(err, errlen, "%s", no_services);
	return -1;
}

/* see os.h */
int os_service_run(const char *conf, int (*fn)(const char *conf))
{
	(void)conf;
	(void)fn;
	return OS_NOT_SERVICE;
}

void os_service_ready(void)
{
}

int os_service_install(const char *name, const char *conf, char *err, size_t errlen)
{
	(void)name;
	(void)conf;
	return no_service(err, errlen);
}

int os_service_uninstall(const char *name, char *err, size_t errlen)
{
	(void)name;
	return no_service(err, errlen);
}

int os_service_start(const char *name, char *err, size_t errlen)
{
	(void)name;
	return no_service(err, errlen);
}

int os_service_stop(const char *name, char *err, size_t errlen)
{
	(void)name;
	return no_service(err, errlen);
}

int os_service_reload(const char *name, char *err, size_t errlen)
{
	(void)name;
	return no_service(err, errlen);
}

int os_service_status(const char *name, char *state, size_t statelen, char *err, size_t errlen)
{
	(void)name;
	snprintf(state, statelen, "unknown");
	return no_service(err, errlen);
}
