//go:build unix

package fdlimit

import "syscall"

// raise sets the soft RLIMIT_NOFILE to the hard limit and returns the soft
// limit then in force: the hard limit, or the soft one when raising failed
// (macOS refuses a soft limit over kern.maxfilesperproc, which Go's runtime
// has already raised it to). Unlimited when the limit cannot be read.
func raise() uint64 {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return Unlimited
	}
	if rl.Cur < rl.Max {
		want := rl
		want.Cur = rl.Max
		if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want) == nil {
			rl = want
		}
	}
	return uint64(rl.Cur) // int64 on some BSDs, where RLIM_INFINITY is -1
}
