/* Escape probes run inside the sandbox by tests/security. Each prints "NAME ok" when the attempt
   succeeded and "NAME errno=CODE" when the kernel refused it. Compiled with gcc -static at test time
   (the minbase image has no compiler and no Python). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/keyctl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

static void report(const char *name, long rc) {
    if (rc < 0) printf("%s errno=%s\n", name, strerrorname_np(errno));
    else printf("%s ok\n", name);
}

static void handles(const char *path) {
    struct { struct file_handle fh; unsigned char data[128]; } h;
    int mount_id;
    h.fh.handle_bytes = 128;
    report("name_to_handle_at", syscall(SYS_name_to_handle_at, AT_FDCWD, path, &h.fh, &mount_id, 0));
    /* The "shocker" attack: guess the handle of the file system's root directory (inode 2). */
    int fd = open(path, O_RDONLY);
    h.fh.handle_bytes = 8;
    h.fh.handle_type = 1;
    unsigned int ino_gen[2] = {2, 0};
    memcpy(h.fh.f_handle, ino_gen, 8);
    report("open_by_handle_at", syscall(SYS_open_by_handle_at, fd, &h.fh, O_RDONLY));
}

static void kernel(void) {
    report("kexec_load", syscall(SYS_kexec_load, 0, 0, NULL, 0));
    report("bpf", syscall(SYS_bpf, 0, NULL, 0));
    report("perf_event_open", syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0));
    report("keyctl", syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0));
    report("add_key", syscall(SYS_add_key, "user", "kiln-escape-key", "x", 1, KEY_SPEC_SESSION_KEYRING));
    report("userfaultfd", syscall(SYS_userfaultfd, 0));
    report("init_module", syscall(SYS_init_module, NULL, 0, ""));
    report("io_uring_setup", syscall(SYS_io_uring_setup, 1, NULL));
    report("swapon", syscall(SYS_swapon, "/tmp/nothing", 0));
    report("reboot", syscall(SYS_reboot, 0xfee1dead, 672274793, 0x4321fedc, NULL));
}

static void namespaces(void) {
    report("unshare_user", unshare(CLONE_NEWUSER));
    report("unshare_mount", unshare(CLONE_NEWNS));
    report("unshare_net", unshare(CLONE_NEWNET));
    report("mount_tmpfs", mount("kiln-escape", "/mnt", "tmpfs", 0, NULL));
    report("remount_root_rw", mount(NULL, "/proc/sys", NULL, MS_REMOUNT | MS_BIND, NULL));
    report("umount_proc_sys", umount2("/proc/sys", MNT_DETACH));
    report("pivot_root", syscall(SYS_pivot_root, "/tmp", "/tmp"));
    report("chroot", chroot("/"));
    long pid = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, NULL, NULL, NULL, 0);
    if (pid == 0) _exit(0);
    report("clone_newuser", pid);
}

static void sockets(void) {
    report("raw_inet", socket(AF_INET, SOCK_RAW, IPPROTO_ICMP));
    report("packet", socket(AF_PACKET, SOCK_RAW, 0));
    report("vsock", socket(40, SOCK_STREAM, 0));
    report("tcp", socket(AF_INET, SOCK_STREAM, 0));
}

static void addr(const char *ifname, const char *ip) {
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strncpy(ifr.ifr_name, ifname, IFNAMSIZ - 1);
    struct sockaddr_in *sin = (struct sockaddr_in *)&ifr.ifr_addr;
    sin->sin_family = AF_INET;
    inet_pton(AF_INET, ip, &sin->sin_addr);
    report("add_address", ioctl(s, SIOCSIFADDR, &ifr));
}

static void device(const char *path, unsigned maj, unsigned min) {
    unlink(path);
    report("mknod", mknod(path, S_IFBLK | 0600, makedev(maj, min)));
    report("open_device", open(path, O_RDONLY));
}

static void connect_to(const char *ip, int port) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, ip, &sin.sin_addr);
    report("connect", connect(s, (struct sockaddr *)&sin, sizeof sin));
}

static void listen_on(int port, int seconds) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};
    report("bind", bind(s, (struct sockaddr *)&sin, sizeof sin));
    report("listen", listen(s, 1));
    fflush(stdout);
    sleep(seconds);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *what = argc > 1 ? argv[1] : "";
    if (!strcmp(what, "handles")) handles(argv[2]);
    else if (!strcmp(what, "kernel")) kernel();
    else if (!strcmp(what, "namespaces")) namespaces();
    else if (!strcmp(what, "sockets")) sockets();
    else if (!strcmp(what, "addr")) addr(argv[2], argv[3]);
    else if (!strcmp(what, "device")) device(argv[2], atoi(argv[3]), atoi(argv[4]));
    else if (!strcmp(what, "ptrace")) {
        pid_t pid = atoi(argv[2]);
        report("kill", kill(pid, 0));
        report("ptrace_attach", ptrace(PTRACE_ATTACH, pid, NULL, NULL));
    } else if (!strcmp(what, "connect")) connect_to(argv[2], atoi(argv[3]));
    else if (!strcmp(what, "listen")) listen_on(atoi(argv[2]), atoi(argv[3]));
    else { fprintf(stderr, "unknown probe %s\n", what); return 2; }
    return 0;
}
