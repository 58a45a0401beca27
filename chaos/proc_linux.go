package chaos

import "syscall"

// procAttr puts a replica in its own process group (a Ctrl-C reaches braid
// chaos, which stops the replicas itself) and has the kernel kill it if
// braid chaos dies without cleaning up.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
