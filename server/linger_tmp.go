package server

import "net"

// lingerOnClose is a placeholder of the lead's until helper-1's server/edge.go
// defines the real one: whoever adds edge.go deletes this file.
func lingerOnClose(net.Conn) {}
