/* execenv ENTRY... -- PROGRAM ARG...: runs PROGRAM with exactly the
 * environment entries given, in that order, repeated names included (which
 * no shell, env(1) or std::process::Command can produce). First it prints
 * what getenv() answers in this environment for each name given, as
 * "getenv NAME=VALUE" or "getenv NAME unset", the oracle for the library's
 * own reading of the environment. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern char **environ;

int main(int argc, char **argv) {
    int separator = 1;
    while (separator < argc && strcmp(argv[separator], "--") != 0)
        separator++;
    if (separator + 1 >= argc) {
        fprintf(stderr, "usage: execenv ENTRY... -- PROGRAM ARG...\n");
        return 2;
    }
    char **entries = calloc((size_t)separator, sizeof *entries);
    if (entries == NULL)
        return 2;
    for (int i = 1; i < separator; i++)
        entries[i - 1] = argv[i];
    entries[separator - 1] = NULL;

    environ = entries;
    for (int i = 0; entries[i] != NULL; i++) {
        char name[256];
        size_t length = strcspn(entries[i], "=");
        if (length >= sizeof name)
            continue;
        memcpy(name, entries[i], length);
        name[length] = '\0';
        const char *value = getenv(name);
        if (value != NULL)
            printf("getenv %s=%s\n", name, value);
        else
            printf("getenv %s unset\n", name);
    }
    fflush(stdout);
    execve(argv[separator + 1], argv + separator + 1, entries);
    perror("execve");
    return 127;
}
