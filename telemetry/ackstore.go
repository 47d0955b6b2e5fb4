package telemetry

import (
	"strings"
	"sync"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// ackStore wraps paho's MemoryStore to work around two paho v1.5.1 defects
// that matter for results:
//
//  1. A publish token can complete WITHOUT error and without a PUBACK: on
//     (re)connect, resume() re-sends every stored publish under a new token
//     and claimID completes the old token (flowComplete, no error). A
//     PublishResult waiting on that token would report success for a
//     message the broker may never have acknowledged.
//  2. resume() sets Dup on the very packet object held in the store while
//     the writer goroutine may be serialising it (a data race when a
//     publish, such as the birth published from OnConnect, happens between
//     "connection up" and the resume snapshot).
//
// paho deletes an outbound QoS 1 publish from the store exactly when its
// PUBACK is read (persistInbound, before the token is completed). ackStore
// observes that Del, so publishWait treats a message as acknowledged only
// when the packet carrying its payload left the store by a PUBACK. Put and
// Get copy publish packets so the stored packet is never the one a writer
// goroutine is serialising.
type ackStore struct {
	*paho.MemoryStore

	mu      sync.Mutex
	keys    map[string]*byte        // outbound store key -> first payload byte of the publish stored there
	waiters map[*byte]chan struct{} // payload identity -> closed on PUBACK
}

func newAckStore() *ackStore {
	return &ackStore{
		MemoryStore: paho.NewMemoryStore(),
		keys:        make(map[string]*byte),
		waiters:     make(map[*byte]chan struct{}),
	}
}

// expect registers interest in the PUBACK of the publish whose payload is
// exactly this slice (identity, not content: payload must be a fresh,
// non-empty slice kept alive until done is called). It must be called
// before the publish is handed to paho.
func (s *ackStore) expect(payload []byte) (acked <-chan struct{}, done func()) {
	p := &payload[0]
	ch := make(chan struct{})
	s.mu.Lock()
	s.waiters[p] = ch
	s.mu.Unlock()
	return ch, func() {
		s.mu.Lock()
		if s.waiters[p] == ch {
			delete(s.waiters, p)
		}
		s.mu.Unlock()
	}
}

// Put stores a private copy of a publish packet: paho's writer mutates the
// packet it serialises (RemainingLength), so the stored object must never
// be the one in flight. Put runs in Publish before the packet is handed to
// the writer, so copying here does not race.
func (s *ackStore) Put(key string, m packets.ControlPacket) {
	if pub, ok := m.(*packets.PublishPacket); ok {
		if strings.HasPrefix(key, "o.") && len(pub.Payload) > 0 {
			s.mu.Lock()
			s.keys[key] = &pub.Payload[0]
			s.mu.Unlock()
		}
		cp := *pub
		m = &cp
	}
	s.MemoryStore.Put(key, m)
}

// Get returns a fresh copy of a stored publish packet, so resume() may set
// Dup on it and the writer may serialise it without touching the stored one.
func (s *ackStore) Get(key string) packets.ControlPacket {
	m := s.MemoryStore.Get(key)
	if pub, ok := m.(*packets.PublishPacket); ok {
		cp := *pub
		return &cp
	}
	return m
}

// Del is called for an outbound publish key only when its PUBACK arrives
// (paho deletes other outbound keys only for non-publish packets).
func (s *ackStore) Del(key string) {
	s.MemoryStore.Del(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.keys[key]
	if !ok {
		return
	}
	delete(s.keys, key)
	if ch, ok := s.waiters[p]; ok {
		close(ch)
		delete(s.waiters, p)
	}
}

// Reset is only called by paho with CleanSession=true; forget everything
// (waiters then time out: unconfirmed, the safe direction).
func (s *ackStore) Reset() {
	s.MemoryStore.Reset()
	s.mu.Lock()
	clear(s.keys)
	s.mu.Unlock()
}
