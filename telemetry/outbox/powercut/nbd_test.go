package powercut

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
)

// TestDiskOverNBD speaks NBD to a Disk as qemu does (fixed newstyle, GO,
// writes, a flush, a FUA write, a read) and cuts the power: what was
// flushed or written with FUA is on the image, the other writes are lost,
// and the guest read its own unflushed writes before the cut.
func TestDiskOverNBD(t *testing.T) {
	img := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(img, make([]byte, 64*SectorSize), 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := OpenDisk(img)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	srv, cli := net.Pipe()
	done := make(chan error, 1)
	go func() { done <- d.Serve(srv); srv.Close() }()
	be := binary.BigEndian
	var hello struct {
		Magic, Opt uint64
		Flags      uint16
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	wr := func(vs ...any) error {
		for _, v := range vs {
			if err := binary.Write(cli, be, v); err != nil {
				return err
			}
		}
		return nil
	}
	must(binary.Read(cli, be, &hello))
	if hello.Magic != nbdMagic || hello.Opt != nbdOptMagic || hello.Flags&nbdFlagFixed == 0 {
		t.Fatalf("hello %+v", hello)
	}
	must(binary.Write(cli, be, uint32(nbdFlagFixed|nbdFlagNoZeroes)))
	// An option the server does not know, then GO.
	must(wr(uint64(nbdOptMagic), uint32(8), uint32(0)))
	var rep struct {
		Magic    uint64
		Opt, Typ uint32
		Len      uint32
	}
	must(binary.Read(cli, be, &rep))
	if rep.Typ != nbdRepErrUnsup {
		t.Fatalf("unknown option: %+v", rep)
	}
	must(wr(uint64(nbdOptMagic), uint32(nbdOptGo), uint32(6), uint32(0), uint16(0)))
	must(binary.Read(cli, be, &rep))
	info := make([]byte, rep.Len)
	_, err = io.ReadFull(cli, info)
	must(err)
	if rep.Typ != nbdRepInfo || be.Uint64(info[2:]) != 64*SectorSize || be.Uint16(info[10:])&(nbdSendFlush|nbdSendFUA) != nbdSendFlush|nbdSendFUA {
		t.Fatalf("info %+v %x", rep, info)
	}
	must(binary.Read(cli, be, &rep))
	if rep.Typ != nbdRepAck {
		t.Fatalf("go: %+v", rep)
	}
	cookie := uint64(0)
	req := func(typ, flags uint16, off int64, data []byte, n int) []byte {
		t.Helper()
		cookie++
		must(wr(uint32(nbdReqMagic), flags, typ, cookie, uint64(off), uint32(max(n, len(data)))))
		if data != nil {
			_, err := cli.Write(data)
			must(err)
		}
		var r struct {
			Magic, Err uint32
			Cookie     uint64
		}
		must(binary.Read(cli, be, &r))
		if r.Magic != nbdReplyMagic || r.Err != 0 || r.Cookie != cookie {
			t.Fatalf("reply %+v", r)
		}
		if typ != nbdCmdRead {
			return nil
		}
		b := make([]byte, n)
		_, err := io.ReadFull(cli, b)
		must(err)
		return b
	}
	fill := func(c byte, n int) []byte { return bytes.Repeat([]byte{c}, n) }
	req(nbdCmdWrite, 0, 0, fill('a', 2*SectorSize), 0)
	req(nbdCmdFlush, 0, 0, nil, 0)
	req(nbdCmdWrite, 0, 0, fill('b', SectorSize), 0)            // over a flushed sector: lost at the cut
	req(nbdCmdWrite, 0, 8*SectorSize, fill('c', SectorSize), 0) // lost
	req(nbdCmdWrite, nbdCmdFlagFUA, 16*SectorSize, fill('d', SectorSize), 0)
	if got := req(nbdCmdRead, 0, 0, nil, 2*SectorSize); !bytes.Equal(got, append(fill('b', SectorSize), fill('a', SectorSize)...)) {
		t.Fatalf("read before the cut: %q", got[:4])
	}
	cli.Close() // qemu killed
	must(<-done)
	kept, lost, err := d.Cut(nil)
	if kept != 0 || lost != 2 || err != nil {
		t.Fatalf("cut: kept %d lost %d %v", kept, lost, err)
	}
	b, err := os.ReadFile(img)
	must(err)
	if !bytes.Equal(b[:2*SectorSize], fill('a', 2*SectorSize)) || b[8*SectorSize] != 0 || b[16*SectorSize] != 'd' {
		t.Fatalf("image after the cut: %q %q %q", b[0], b[8*SectorSize], b[16*SectorSize])
	}
	if s := d.Stats(); s.Writes != 4 || s.FUAWrites != 1 || s.Flushes != 1 || s.Lost != 2 {
		t.Fatalf("stats %+v", s)
	}
}
