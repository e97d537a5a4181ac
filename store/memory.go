package store

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"time"
)

// DefaultMaxEntries bounds the in-process store when MemoryOptions leaves
// MaxEntries zero.
const DefaultMaxEntries = 100_000

// sweepEvery is how often writes sweep expired entries out, so that values
// (tokens, sealed or not) do not outlive their TTL in memory for long.
const sweepEvery = time.Second

// MemoryOptions configures NewMemory.
type MemoryOptions struct {
	// MaxEntries bounds the live keys; a write of a new key beyond it
	// fails with ErrFull. Default DefaultMaxEntries.
	MaxEntries int
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Memory is the in-process Store: one instance's state, nothing to run.
type Memory struct {
	max int
	now func() time.Time

	mu        sync.Mutex
	entries   map[string]memEntry
	topics    map[string]map[chan struct{}]struct{}
	lastSweep time.Time
}

type memEntry struct {
	value   []byte
	expires time.Time
}

// NewMemory returns an empty in-process store.
func NewMemory(opts MemoryOptions) *Memory {
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = DefaultMaxEntries
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Memory{max: opts.MaxEntries, now: opts.Now, entries: map[string]memEntry{}, topics: map[string]map[chan struct{}]struct{}{}}
}

// Len is the number of entries held, expired ones not yet swept included.
func (m *Memory) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.entries)
}

// live returns key's entry when it has not expired; m.mu is held.
func (m *Memory) live(key string, now time.Time) (memEntry, bool) {
	e, ok := m.entries[key]
	if !ok || !now.Before(e.expires) {
		return memEntry{}, false
	}
	return e, true
}

// Get implements Store.
func (m *Memory) Get(_ context.Context, key string) ([]byte, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.live(key, m.now())
	if !ok {
		return nil, false, nil
	}
	return bytes.Clone(e.value), true, nil
}

// put stores key after sweeping when due; m.mu is held.
func (m *Memory) put(key string, value []byte, ttl time.Duration, now time.Time) error {
	if now.Sub(m.lastSweep) >= sweepEvery || len(m.entries) >= m.max {
		m.sweep(now)
	}
	if _, exists := m.entries[key]; !exists && len(m.entries) >= m.max {
		return fmt.Errorf("%w: %d live entries", ErrFull, len(m.entries))
	}
	m.entries[key] = memEntry{value: bytes.Clone(value), expires: now.Add(ttl)}
	return nil
}

func (m *Memory) sweep(now time.Time) {
	m.lastSweep = now
	for k, e := range m.entries {
		if !now.Before(e.expires) {
			delete(m.entries, k)
		}
	}
}

// Set implements Store.
func (m *Memory) Set(_ context.Context, key string, value []byte, ttl time.Duration) error {
	if err := checkTTL(ttl); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.put(key, value, ttl, m.now())
}

// SetNX implements Store.
func (m *Memory) SetNX(_ context.Context, key string, value []byte, ttl time.Duration) (bool, error) {
	if err := checkTTL(ttl); err != nil {
		return false, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	if _, ok := m.live(key, now); ok {
		return false, nil
	}
	if err := m.put(key, value, ttl, now); err != nil {
		return false, err
	}
	return true, nil
}

// CompareAndDelete implements Store.
func (m *Memory) CompareAndDelete(_ context.Context, key string, value []byte) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.live(key, m.now())
	if !ok || !bytes.Equal(e.value, value) {
		return false, nil
	}
	delete(m.entries, key)
	return true, nil
}

// Delete implements Store.
func (m *Memory) Delete(_ context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.entries, key)
	return nil
}

// Publish implements Store.
func (m *Memory) Publish(_ context.Context, topic string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for ch := range m.topics[topic] {
		select {
		case ch <- struct{}{}:
		default: // a wake-up is already pending
		}
	}
	return nil
}

// Subscribe implements Store.
func (m *Memory) Subscribe(_ context.Context, topic string) (*Subscription, error) {
	ch := make(chan struct{}, 1)
	m.mu.Lock()
	defer m.mu.Unlock()
	subs := m.topics[topic]
	if subs == nil {
		subs = map[chan struct{}]struct{}{}
		m.topics[topic] = subs
	}
	subs[ch] = struct{}{}
	var once sync.Once
	return &Subscription{C: ch, close: func() {
		once.Do(func() {
			m.mu.Lock()
			defer m.mu.Unlock()
			delete(m.topics[topic], ch)
			if len(m.topics[topic]) == 0 {
				delete(m.topics, topic)
			}
		})
	}}, nil
}

// Close implements Store; the in-process store holds nothing to release.
func (m *Memory) Close() error { return nil }
