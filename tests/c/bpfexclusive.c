/* Stands for another tool that holds an exclusive sock_ops attachment: loads
 * a sock_ops program that does nothing ("return 1"), named ka_exclusive,
 * attaches it to a cgroup without BPF_F_ALLOW_MULTI (which refuses every
 * other sock_ops program there and below), prints its id and exits; the
 * attachment stays until the cgroup is removed.   bpfexclusive CGROUP_DIR */
#include <fcntl.h>
#include <linux/bpf.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static long bpf(int cmd, union bpf_attr *attr) {
    return syscall(SYS_bpf, cmd, attr, sizeof *attr);
}

int main(int argc, char **argv) {
    if (argc != 2)
        return 2;
    int cgroup = open(argv[1], O_RDONLY | O_DIRECTORY);
    if (cgroup < 0) {
        perror(argv[1]);
        return 1;
    }
    struct bpf_insn insns[] = {
        {.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = 0, .imm = 1},
        {.code = BPF_JMP | BPF_EXIT},
    };
    union bpf_attr load;
    memset(&load, 0, sizeof load);
    load.prog_type = BPF_PROG_TYPE_SOCK_OPS;
    load.insns = (__u64)(unsigned long)insns;
    load.insn_cnt = 2;
    load.license = (__u64)(unsigned long)"GPL";
    strcpy(load.prog_name, "ka_exclusive");
    int prog = bpf(BPF_PROG_LOAD, &load);
    if (prog < 0) {
        perror("BPF_PROG_LOAD");
        return 1;
    }
    union bpf_attr attach;
    memset(&attach, 0, sizeof attach);
    attach.target_fd = cgroup;
    attach.attach_bpf_fd = prog;
    attach.attach_type = BPF_CGROUP_SOCK_OPS;
    attach.attach_flags = 0;
    if (bpf(BPF_PROG_ATTACH, &attach) != 0) {
        perror("BPF_PROG_ATTACH");
        return 1;
    }
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
