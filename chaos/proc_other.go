//go:build !linux

package chaos

import "syscall"

// procAttr puts a replica in its own process group: a Ctrl-C reaches braid
// chaos, which stops the replicas itself.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
