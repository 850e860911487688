/*
 * libnss_mfatest.so.2: a directory for the tests that can go down.
 *
 * A glibc NSS module (passwd and group) serving the files named by
 * MFATEST_PASSWD and MFATEST_GROUP, in /etc/passwd and /etc/group format,
 * as an LDAP or SSSD source would serve its directory. Its group lookups
 * answer as the first word of the file MFATEST_STATE says, read at every
 * call, so a test switches it while mfad runs:
 *
 *   ok        answer from the files
 *   unavail   NSS_STATUS_UNAVAIL, errno ENOENT (what nss-pam-ldapd reports
 *             when nslcd cannot be reached)
 *   silent    NSS_STATUS_UNAVAIL, errno left as it was
 *   tryagain  NSS_STATUS_TRYAGAIN, errno EAGAIN (a busy server)
 *   hang      no answer until the state changes (a server that stalls)
 *
 * passwd lookups always answer, so mfad can still name its callers.
 * Only the processes that load it (mfad, in a mount namespace whose
 * /etc/nsswitch.conf names "mfatest") see it; nothing on the machine changes.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <grp.h>
#include <nss.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum state { ST_OK, ST_UNAVAIL, ST_SILENT, ST_TRYAGAIN, ST_HANG };

static enum state read_state(void)
{
    const char *path = getenv("MFATEST_STATE");
    char word[32] = "";
    FILE *f;

    if (path == NULL || (f = fopen(path, "re")) == NULL)
        return ST_UNAVAIL;
    if (fscanf(f, "%31s", word) != 1)
        word[0] = '\0';
    fclose(f);
    if (strcmp(word, "ok") == 0)
        return ST_OK;
    if (strcmp(word, "silent") == 0)
        return ST_SILENT;
    if (strcmp(word, "tryagain") == 0)
        return ST_TRYAGAIN;
    if (strcmp(word, "hang") == 0)
        return ST_HANG;
    return ST_UNAVAIL;
}

/* NSS_STATUS_SUCCESS when group lookups may go on; the failure otherwise. */
static enum nss_status group_state(int *errnop)
{
    enum state st;
    const struct timespec tick = {0, 20 * 1000 * 1000};

    while ((st = read_state()) == ST_HANG)
        nanosleep(&tick, NULL);
    switch (st) {
    case ST_OK:
        return NSS_STATUS_SUCCESS;
    case ST_SILENT:
        return NSS_STATUS_UNAVAIL;
    case ST_TRYAGAIN:
        *errnop = EAGAIN;
        return NSS_STATUS_TRYAGAIN;
    default:
        *errnop = ENOENT;
        return NSS_STATUS_UNAVAIL;
    }
}

static FILE *open_env(const char *name, int *errnop)
{
    const char *path = getenv(name);
    FILE *f = path ? fopen(path, "re") : NULL;
    if (f == NULL)
        *errnop = path ? errno : ENOENT;
    return f;
}

/* The status for what fget*ent_r returned at the end of a scan. */
static enum nss_status scan_end(int rc, int *errnop)
{
    if (rc == ERANGE) {
        *errnop = ERANGE;
        return NSS_STATUS_TRYAGAIN;
    }
    *errnop = ENOENT;
    return NSS_STATUS_NOTFOUND;
}

enum nss_status _nss_mfatest_getpwnam_r(const char *name, struct passwd *pw,
                                        char *buf, size_t len, int *errnop)
{
    struct passwd *found;
    int rc;
    FILE *f = open_env("MFATEST_PASSWD", errnop);
    if (f == NULL)
        return NSS_STATUS_UNAVAIL;
    while ((rc = fgetpwent_r(f, pw, buf, len, &found)) == 0) {
        if (strcmp(pw->pw_name, name) == 0) {
            fclose(f);
            return NSS_STATUS_SUCCESS;
        }
    }
    fclose(f);
    return scan_end(rc, errnop);
}

enum nss_status _nss_mfatest_getpwuid_r(uid_t uid, struct passwd *pw,
                                        char *buf, size_t len, int *errnop)
{
    struct passwd *found;
    int rc;
    FILE *f = open_env("MFATEST_PASSWD", errnop);
    if (f == NULL)
        return NSS_STATUS_UNAVAIL;
    while ((rc = fgetpwent_r(f, pw, buf, len, &found)) == 0) {
        if (pw->pw_uid == uid) {
            fclose(f);
            return NSS_STATUS_SUCCESS;
        }
    }
    fclose(f);
    return scan_end(rc, errnop);
}

/* The first group of the file for which match() is true. */
static enum nss_status find_group(int (*match)(const struct group *, const void *),
                                  const void *key, struct group *gr,
                                  char *buf, size_t len, int *errnop)
{
    struct group *found;
    int rc;
    FILE *f;
    enum nss_status st = group_state(errnop);
    if (st != NSS_STATUS_SUCCESS)
        return st;
    if ((f = open_env("MFATEST_GROUP", errnop)) == NULL)
        return NSS_STATUS_UNAVAIL;
    while ((rc = fgetgrent_r(f, gr, buf, len, &found)) == 0) {
        if (match(gr, key)) {
            fclose(f);
            return NSS_STATUS_SUCCESS;
        }
    }
    fclose(f);
    return scan_end(rc, errnop);
}

static int by_name(const struct group *gr, const void *key)
{
    return strcmp(gr->gr_name, key) == 0;
}

static int by_gid(const struct group *gr, const void *key)
{
    return gr->gr_gid == *(const gid_t *)key;
}

enum nss_status _nss_mfatest_getgrnam_r(const char *name, struct group *gr,
                                        char *buf, size_t len, int *errnop)
{
    return find_group(by_name, name, gr, buf, len, errnop);
}

enum nss_status _nss_mfatest_getgrgid_r(gid_t gid, struct group *gr,
                                        char *buf, size_t len, int *errnop)
{
    return find_group(by_gid, &gid, gr, buf, len, errnop);
}

/* Every group of the file listing `user` as a member, except `skip`. */
enum nss_status _nss_mfatest_initgroups_dyn(const char *user, gid_t skip,
                                            long int *start, long int *size,
                                            gid_t **groupsp, long int limit,
                                            int *errnop)
{
    struct group gr, *found;
    char buf[16384];
    FILE *f;
    enum nss_status st = group_state(errnop);
    if (st != NSS_STATUS_SUCCESS)
        return st;
    if ((f = open_env("MFATEST_GROUP", errnop)) == NULL)
        return NSS_STATUS_UNAVAIL;
    while (fgetgrent_r(f, &gr, buf, sizeof buf, &found) == 0) {
        char **m;
        if (gr.gr_gid == skip)
            continue;
        for (m = gr.gr_mem; *m != NULL; m++)
            if (strcmp(*m, user) == 0)
                break;
        if (*m == NULL)
            continue;
        if (*start == *size) {
            long int grow = *size * 2;
            gid_t *more;
            if (limit > 0 && grow > limit)
                grow = limit;
            if (grow <= *size)
                break;
            more = realloc(*groupsp, grow * sizeof(gid_t));
            if (more == NULL)
                break;
            *groupsp = more;
            *size = grow;
        }
        (*groupsp)[(*start)++] = gr.gr_gid;
    }
    fclose(f);
    return NSS_STATUS_SUCCESS;
}
