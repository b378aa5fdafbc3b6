/* tmpdir.h: a scratch directory for a test (checkpoints, RocksDB), removed with everything in it.
 * Header-only, included (after cmocka.h) by the tests that need one. Ownership: tmpdir_make
 * returns a malloc'ed path; tmpdir_remove deletes the tree and frees the path. */
#ifndef FR_TEST_TMPDIR_H
#define FR_TEST_TMPDIR_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A new empty directory /tmp/freshet-<tag>-XXXXXX. */
static char *tmpdir_make(const char *tag)
{
    char *d = malloc(strlen(tag) + 32);
    assert_non_null(d);
    sprintf(d, "/tmp/freshet-%s-XXXXXX", tag);
    assert_non_null(mkdtemp(d));
    return d;
}

static void tmpdir_remove_tree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0) return;
    if (S_ISDIR(st.st_mode)) {
        DIR *dir = opendir(path);
        assert_non_null(dir);
        struct dirent *e;
        while ((e = readdir(dir)) != NULL) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            char child[1024];
            snprintf(child, sizeof child, "%s/%s", path, e->d_name);
            tmpdir_remove_tree(child);
        }
        closedir(dir);
        assert_int_equal(rmdir(path), 0);
    } else {
        assert_int_equal(unlink(path), 0);
    }
}

static void tmpdir_remove(char *d)
{
    tmpdir_remove_tree(d);
    free(d);
}

#endif
