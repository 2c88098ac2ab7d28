//go:build !unix

package store

// procUsage returns no usage: it is not measured on this system.
func procUsage() usage { return usage{} }
