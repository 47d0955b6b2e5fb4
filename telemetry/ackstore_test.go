package telemetry

import (
	"testing"

	"github.com/eclipse/paho.mqtt.golang/packets"
)

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func TestAckStore(t *testing.T) {
	s := newAckStore()
	s.Open()
	mine := []byte(`{"a":1}`)
	other := []byte(`{"a":1}`) // same content, different identity
	acked, done := s.expect(mine)
	defer done()

	put := func(key string, payload []byte) *packets.PublishPacket {
		p := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
		p.Qos = 1
		p.Payload = payload
		s.Put(key, p)
		return p
	}
	orig := put("o.1", mine)
	put("o.2", other)

	got := s.Get("o.1").(*packets.PublishPacket)
	if got == orig {
		t.Error("Get returned the packet handed to Put; want a private copy")
	}
	got.Dup = true // what paho's resume() does
	if again := s.Get("o.1").(*packets.PublishPacket); again.Dup {
		t.Error("mutating a Get result changed the stored packet")
	}

	s.Del("o.2") // PUBACK for another message with identical content
	if isClosed(acked) {
		t.Fatal("acked by another message's PUBACK")
	}
	s.Del("i.1") // inbound key: unrelated
	if isClosed(acked) {
		t.Fatal("acked by an inbound delete")
	}
	s.Del("o.1")
	if !isClosed(acked) {
		t.Fatal("not acked after the PUBACK delete of its key")
	}
	if len(s.keys) != 0 || len(s.waiters) != 0 {
		t.Errorf("leaked entries: keys %d waiters %d", len(s.keys), len(s.waiters))
	}
}
