//go:build !unix

package fdlimit

// raise reports no limit: other systems have no RLIMIT_NOFILE.
func raise() uint64 { return Unlimited }
