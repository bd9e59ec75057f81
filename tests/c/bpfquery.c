/* Lists the eBPF programs attached to a cgroup (sock_ops and setsockopt),
 * one name a line, with BPF_PROG_QUERY: what `bpftool cgroup show` prints,
 * without needing bpftool.   bpfquery CGROUP_DIR */
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
    enum bpf_attach_type types[] = {BPF_CGROUP_SOCK_OPS, BPF_CGROUP_SETSOCKOPT};
    for (size_t t = 0; t < 2; t++) {
        __u32 ids[64];
        union bpf_attr attr;
        memset(&attr, 0, sizeof attr);
        attr.query.target_fd = cgroup;
        attr.query.attach_type = types[t];
        attr.query.prog_ids = (__u64)(unsigned long)ids;
        attr.query.prog_cnt = 64;
        if (bpf(BPF_PROG_QUERY, &attr) != 0) {
            perror("BPF_PROG_QUERY");
            return 1;
        }
        for (__u32 i = 0; i < attr.query.prog_cnt; i++) {
            union bpf_attr by_id;
            memset(&by_id, 0, sizeof by_id);
            by_id.prog_id = ids[i];
            int prog = bpf(BPF_PROG_GET_FD_BY_ID, &by_id);
            if (prog < 0)
                continue;
            struct bpf_prog_info info;
            memset(&info, 0, sizeof info);
            union bpf_attr get;
            memset(&get, 0, sizeof get);
            get.info.bpf_fd = prog;
            get.info.info_len = sizeof info;
            get.info.info = (__u64)(unsigned long)&info;
            if (bpf(BPF_OBJ_GET_INFO_BY_FD, &get) == 0)
                printf("%s\n", info.name);
            close(prog);
        }
    }
    return 0;
}
