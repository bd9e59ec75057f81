/* Attachments the kernel-side mode's tests meet, made of programs that do
 * nothing ("return 1"); each stays until the cgroup is removed.
 *
 *   bpfattach CGROUP_DIR exclusive
 *       Another tool's exclusive attachment: a sock_ops program named
 *       ka_exclusive, attached without BPF_F_ALLOW_MULTI (which refuses
 *       every other sock_ops program there and below). Prints its id.
 *   bpfattach CGROUP_DIR pair
 *       A stray pair of ours, as concurrent runs of an older keepalive left
 *       them: keepalive_ops and keepalive_sso, attached with
 *       BPF_F_ALLOW_MULTI, using no shared record. */
#include <fcntl.h>
#include <linux/bpf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static long bpf(int cmd, union bpf_attr *attr) {
    return syscall(SYS_bpf, cmd, attr, sizeof *attr);
}

/* Loads "return 1" as NAME and attaches it; returns the program's fd. */
static int attach(int cgroup, enum bpf_prog_type type, enum bpf_attach_type attach_type,
                  const char *name, __u32 flags) {
    struct bpf_insn insns[] = {
        {.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = 0, .imm = 1},
        {.code = BPF_JMP | BPF_EXIT},
    };
    union bpf_attr load;
    memset(&load, 0, sizeof load);
    load.prog_type = type;
    load.expected_attach_type = attach_type;
    load.insns = (__u64)(unsigned long)insns;
    load.insn_cnt = 2;
    load.license = (__u64)(unsigned long)"GPL";
    strncpy(load.prog_name, name, sizeof load.prog_name - 1);
    int prog = bpf(BPF_PROG_LOAD, &load);
    if (prog < 0) {
        perror("BPF_PROG_LOAD");
        exit(1);
    }
    union bpf_attr request;
    memset(&request, 0, sizeof request);
    request.target_fd = cgroup;
    request.attach_bpf_fd = prog;
    request.attach_type = attach_type;
    request.attach_flags = flags;
    if (bpf(BPF_PROG_ATTACH, &request) != 0) {
        perror("BPF_PROG_ATTACH");
        exit(1);
    }
    return prog;
}

int main(int argc, char **argv) {
    if (argc != 3)
        return 2;
    int cgroup = open(argv[1], O_RDONLY | O_DIRECTORY);
    if (cgroup < 0) {
        perror(argv[1]);
        return 1;
    }
    if (strcmp(argv[2], "pair") == 0) {
        attach(cgroup, BPF_PROG_TYPE_CGROUP_SOCKOPT, BPF_CGROUP_SETSOCKOPT, "keepalive_sso",
               BPF_F_ALLOW_MULTI);
        attach(cgroup, BPF_PROG_TYPE_SOCK_OPS, BPF_CGROUP_SOCK_OPS, "keepalive_ops",
               BPF_F_ALLOW_MULTI);
        return 0;
    }
    if (strcmp(argv[2], "exclusive") != 0)
        return 2;
    int prog = attach(cgroup, BPF_PROG_TYPE_SOCK_OPS, BPF_CGROUP_SOCK_OPS, "ka_exclusive", 0);
    struct bpf_prog_info info;
    memset(&info, 0, sizeof info);
    union bpf_attr get;
    memset(&get, 0, sizeof get);
    get.info.bpf_fd = prog;
    get.info.info_len = sizeof info;
    get.info.info = (__u64)(unsigned long)&info;
    if (bpf(BPF_OBJ_GET_INFO_BY_FD, &get) != 0) {
        perror("BPF_OBJ_GET_INFO_BY_FD");
        return 1;
    }
    printf("%u\n", info.id);
    return 0;
}
