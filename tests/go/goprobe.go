// A Go TCP client for the kernel-side mode's tests: Go makes its sockets
// with raw system calls, so LD_PRELOAD never reaches it.
//
//	goprobe ADDR:PORT off|default HOLD_MS|wait
//
// off dials with net.Dialer{KeepAlive: -1} (Go's own keepalive off);
// default with Go's default (keepalive on, 15 s, set after connect). Prints
// "connected" and the five options as the C probes do, then holds; with
// wait it reads until the connection ends and prints "closed err=ERRNO"
// (0 for an orderly end), as tests/c/bpfprobe.c does.
package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"syscall"
	"time"
)

func main() {
	dialer := net.Dialer{}
	if os.Args[2] == "off" {
		dialer.KeepAlive = -1
	}
	conn, err := dialer.Dial("tcp", os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "goprobe:", err)
		os.Exit(1)
	}
	raw, err := conn.(*net.TCPConn).SyscallConn()
	if err != nil {
		fmt.Fprintln(os.Stderr, "goprobe:", err)
		os.Exit(1)
	}
	options := []struct {
		key         string
		level, name int
	}{
		{"keepalive", syscall.SOL_SOCKET, syscall.SO_KEEPALIVE},
		{"idle", syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE},
		{"intvl", syscall.IPPROTO_TCP, syscall.TCP_KEEPINTVL},
		{"cnt", syscall.IPPROTO_TCP, syscall.TCP_KEEPCNT},
		{"user_timeout", syscall.IPPROTO_TCP, 18}, // TCP_USER_TIMEOUT
	}
	line := "connected"
	raw.Control(func(fd uintptr) {
		for _, option := range options {
			value, err := syscall.GetsockoptInt(int(fd), option.level, option.name)
			if err != nil {
				line += fmt.Sprintf(" %s=err%d", option.key, err.(syscall.Errno))
			} else {
				line += fmt.Sprintf(" %s=%d", option.key, value)
			}
		}
	})
	fmt.Println(line)
	if os.Args[3] == "wait" {
		_, err := conn.Read(make([]byte, 1))
		var errno syscall.Errno
		if errors.As(err, &errno) {
			fmt.Printf("closed err=%d\n", int(errno))
		} else {
			fmt.Println("closed err=0")
		}
		return
	}
	hold, _ := strconv.Atoi(os.Args[3])
	time.Sleep(time.Duration(hold) * time.Millisecond)
	conn.Close()
}
