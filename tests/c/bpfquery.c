/* Lists the eBPF programs attached to a cgroup (sock_ops and setsockopt),
 * one name a line, with BPF_PROG_QUERY: what `bpftool cgroup show` prints,
 * without needing bpftool.   bpfquery CGROUP_DIR
 * With `maps`, each name is followed by the ids of the maps the program
 * uses.   bpfquery CGROUP_DIR maps
 * The id and name of the map pinned at PATH.   bpfquery --pinned PATH */
#include <fcntl.h>
#include <linux/bpf.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static long bpf(int cmd, union bpf_attr *attr) {
    return syscall(SYS_bpf, cmd, attr, sizeof *attr);
}

static int pinned(const char *path) {
    union bpf_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.pathname = (__u64)(unsigned long)path;
    int map = bpf(BPF_OBJ_GET, &attr);
    if (map < 0) {
        perror(path);
        return 1;
    }
    struct bpf_map_info info;
    memset(&info, 0, sizeof info);
    union bpf_attr get;
    memset(&get, 0, sizeof get);
    get.info.bpf_fd = map;
    get.info.info_len = sizeof info;
    get.info.info = (__u64)(unsigned long)&info;
    if (bpf(BPF_OBJ_GET_INFO_BY_FD, &get) != 0) {
        perror("BPF_OBJ_GET_INFO_BY_FD");
        return 1;
    }
    printf("%u %s\n", info.id, info.name);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "--pinned") == 0)
        return pinned(argv[2]);
    int with_maps = argc == 3 && strcmp(argv[2], "maps") == 0;
    if (argc != 2 && !with_maps)
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
            __u32 map_ids[16];
            struct bpf_prog_info info;
            memset(&info, 0, sizeof info);
            info.nr_map_ids = 16;
            info.map_ids = (__u64)(unsigned long)map_ids;
            union bpf_attr get;
            memset(&get, 0, sizeof get);
            get.info.bpf_fd = prog;
            get.info.info_len = sizeof info;
            get.info.info = (__u64)(unsigned long)&info;
            if (bpf(BPF_OBJ_GET_INFO_BY_FD, &get) == 0) {
                printf("%s", info.name);
                for (__u32 m = 0; with_maps && m < info.nr_map_ids && m < 16; m++)
                    printf(" %u", map_ids[m]);
                printf("\n");
            }
            close(prog);
        }
    }
    return 0;
}
