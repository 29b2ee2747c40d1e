/* strata-mount CWD SOURCE TARGET FSTYPE FLAGS DATA
 * Changes directory to CWD, then calls mount(2). Lets a caller mount overlayfs with
 * lowerdir/upperdir/workdir paths relative to CWD (short option strings) without changing
 * the working directory of a multi-threaded process. FLAGS is a decimal mount flag mask.
 * Exit status 0 on success; otherwise the errno value is printed on stderr as
 * "strata-mount: <syscall>: <errno name>: <message>" and the exit status is 1 (2 on usage errors). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc != 7) {
    fprintf(stderr, "usage: strata-mount CWD SOURCE TARGET FSTYPE FLAGS DATA\n");
    return 2;
  }
  char *end = NULL;
  errno = 0;
  unsigned long flags = strtoul(argv[5], &end, 10);
  if (errno != 0 || end == argv[5] || *end != '\0') {
    fprintf(stderr, "strata-mount: invalid FLAGS %s\n", argv[5]);
    return 2;
  }
  if (chdir(argv[1]) != 0) {
    int e = errno;
    fprintf(stderr, "strata-mount: chdir: %s: %s\n", strerrorname_np(e) ? strerrorname_np(e) : "E?", strerror(e));
    return 1;
  }
  if (mount(argv[2], argv[3], argv[4], flags, argv[6][0] ? argv[6] : NULL) != 0) {
    int e = errno;
    fprintf(stderr, "strata-mount: mount: %s: %s\n", strerrorname_np(e) ? strerrorname_np(e) : "E?", strerror(e));
    return 1;
  }
  return 0;
}
