// Package testbuf has the goroutine-safe buffer that tests hand to a
// program as its stdout or log destination while they read what it wrote.
package testbuf

import (
	"bytes"
	"sync"
)

// Buffer is a bytes.Buffer that may be written and read from several
// goroutines at once.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
