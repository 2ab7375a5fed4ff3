package seccomptest

import (
	"fmt"
	"runtime"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// auditArch is the AUDIT_ARCH_* value seccomp reports for this GOARCH.
var auditArch = map[string]uint32{
	"amd64":   unix.AUDIT_ARCH_X86_64,
	"arm64":   unix.AUDIT_ARCH_AARCH64,
	"386":     unix.AUDIT_ARCH_I386,
	"arm":     unix.AUDIT_ARCH_ARM,
	"riscv64": unix.AUDIT_ARCH_RISCV64,
	"ppc64le": unix.AUDIT_ARCH_PPC64LE,
	"s390x":   unix.AUDIT_ARCH_S390X,
	"loong64": unix.AUDIT_ARCH_LOONGARCH64,
}

// DenyIOUring makes io_uring_setup, io_uring_enter and io_uring_register
// fail with EPERM in every thread of this process, for the rest of its
// life. Call it only in a child process (see InChild and RunChild).
func DenyIOUring() error {
	return DenySyscalls(syscall.EPERM, unix.SYS_IO_URING_SETUP, unix.SYS_IO_URING_ENTER, unix.SYS_IO_URING_REGISTER)
}

// DenySyscalls makes the system calls numbered nrs fail with errno in every
// thread of this process, for the rest of its life. Everything else is
// allowed. Call it only in a child process.
func DenySyscalls(errno syscall.Errno, nrs ...uintptr) error {
	arch, ok := auditArch[runtime.GOARCH]
	if !ok {
		return fmt.Errorf("seccomptest: no AUDIT_ARCH for GOARCH %s", runtime.GOARCH)
	}
	const (
		offNr   = 0 // struct seccomp_data: int nr; __u32 arch; ...
		offArch = 4
		ldAbs   = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
		jeq     = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
		ret     = unix.BPF_RET | unix.BPF_K
	)
	n := len(nrs)
	// 0: ld arch; 1: jeq arch ? next : allow; 2: ld nr;
	// 3..3+n-1: jeq nr_i ? deny : next; 3+n: allow; 4+n: deny.
	prog := []unix.SockFilter{
		{Code: ldAbs, K: offArch},
		{Code: jeq, K: arch, Jt: 0, Jf: uint8(n + 1)},
		{Code: ldAbs, K: offNr},
	}
	for i, nr := range nrs {
		prog = append(prog, unix.SockFilter{Code: jeq, K: uint32(nr), Jt: uint8(n - i), Jf: 0})
	}
	prog = append(prog,
		unix.SockFilter{Code: ret, K: unix.SECCOMP_RET_ALLOW},
		unix.SockFilter{Code: ret, K: unix.SECCOMP_RET_ERRNO | uint32(errno)&unix.SECCOMP_RET_DATA},
	)
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}

	// no_new_privs and the filter must be set by the same thread; TSYNC
	// then gives both to every other thread of the process.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("seccomptest: prctl(PR_SET_NO_NEW_PRIVS): %w", err)
	}
	r, _, e := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER,
		unix.SECCOMP_FILTER_FLAG_TSYNC, uintptr(unsafe.Pointer(&fprog)))
	runtime.KeepAlive(prog)
	if e != 0 {
		return fmt.Errorf("seccomptest: seccomp(SET_MODE_FILTER, TSYNC): %w", e)
	}
	if r != 0 {
		return fmt.Errorf("seccomptest: seccomp TSYNC failed for thread %d", r)
	}
	return nil
}
