package powercut

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"sync"
)

// SectorSize is the unit in which Disk tracks unflushed writes and in
// which a power cut keeps or loses them (the atomic write unit file
// systems assume of a disk).
const SectorSize = 512

// Disk is a block device with a volatile write cache in front of an image
// file, served to qemu over NBD (Serve): a write completes into the cache,
// a flush (NBD_CMD_FLUSH) or a FUA write puts it on the image, and a power
// cut (Cut) decides which cached writes reach the image. This is what qemu
// alone cannot do: killing qemu keeps every write it already passed to the
// host, flushed or not.
type Disk struct {
	f    *os.File
	size int64

	mu      sync.Mutex
	pending []int64          // sectors written since the last flush, in write order (repeats allowed)
	overlay map[int64][]byte // sector -> latest unflushed content
	stats   DiskStats
	trip    int           // writes left before Serve stops (0: not armed)
	tripped chan struct{} // closed when it stopped
}

// DiskStats counts what a Disk saw.
type DiskStats struct {
	Writes, FUAWrites, Flushes int // requests
	Kept, Lost                 int // unflushed sectors at cuts, kept or lost
}

// OpenDisk serves the image file at path (its size is the disk's).
func OpenDisk(path string) (*Disk, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if st.Size()%SectorSize != 0 {
		f.Close()
		return nil, fmt.Errorf("powercut: %s: size %d is not a multiple of %d", path, st.Size(), SectorSize)
	}
	return &Disk{f: f, size: st.Size(), overlay: map[int64][]byte{}, tripped: make(chan struct{})}, nil
}

// ArmCut makes Serve stop answering after n more write requests (n >= 1):
// the last one is acknowledged, so it sits in the cache unflushed, and
// the guest hangs on its next request until the host cuts the power.
// Tripped is closed then. This puts the cut between a write and the
// flush that would have made it durable, which a timer rarely hits.
func (d *Disk) ArmCut(n int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.trip = max(1, n)
}

// Tripped is closed when an armed Serve stopped answering.
func (d *Disk) Tripped() <-chan struct{} { return d.tripped }

// Close closes the image; unflushed writes are dropped (call Cut first).
func (d *Disk) Close() error { return d.f.Close() }

// Stats returns the counts so far.
func (d *Disk) Stats() DiskStats {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stats
}

func (d *Disk) bounds(off int64, n int) error {
	if off < 0 || n < 0 || off%SectorSize != 0 || n%SectorSize != 0 || off+int64(n) > d.size {
		return fmt.Errorf("powercut: request of %d bytes at %d outside the %d-byte disk or not sector-aligned", n, off, d.size)
	}
	return nil
}

// ReadAt reads what the guest would see: the image with the unflushed
// writes on top.
func (d *Disk) ReadAt(p []byte, off int64) error {
	if err := d.bounds(off, len(p)); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, err := d.f.ReadAt(p, off); err != nil {
		return err
	}
	for i := 0; i < len(p); i += SectorSize {
		if s, ok := d.overlay[(off+int64(i))/SectorSize]; ok {
			copy(p[i:i+SectorSize], s)
		}
	}
	return nil
}

// Write takes a write into the cache, or onto the image with fua.
func (d *Disk) Write(p []byte, off int64, fua bool) error {
	if err := d.bounds(off, len(p)); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.stats.Writes++
	if fua {
		d.stats.FUAWrites++
		// Durable now; drop older cached copies of these sectors so a
		// later cut cannot put them back over it.
		if _, err := d.f.WriteAt(p, off); err != nil {
			return err
		}
		for i := 0; i < len(p); i += SectorSize {
			sec := (off + int64(i)) / SectorSize
			if _, ok := d.overlay[sec]; ok {
				d.overlay[sec] = append([]byte(nil), p[i:i+SectorSize]...)
				d.pending = append(d.pending, sec)
			}
		}
		return nil
	}
	for i := 0; i < len(p); i += SectorSize {
		sec := (off + int64(i)) / SectorSize
		d.overlay[sec] = append([]byte(nil), p[i:i+SectorSize]...)
		d.pending = append(d.pending, sec)
	}
	return nil
}

// Flush puts every cached write on the image.
func (d *Disk) Flush() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.stats.Flushes++
	for sec, b := range d.overlay {
		if _, err := d.f.WriteAt(b, sec*SectorSize); err != nil {
			return err
		}
	}
	d.pending, d.overlay = d.pending[:0], map[int64][]byte{}
	return nil
}

// Cut is a power cut: each unflushed sector reaches the image only if
// keep says so (nil: none does), then the cache is empty. A sector written
// twice since the last flush is kept or lost as one (its latest content).
func (d *Disk) Cut(keep func() bool) (kept, lost int, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	seen := map[int64]bool{}
	for _, sec := range d.pending {
		if seen[sec] {
			continue
		}
		seen[sec] = true
		if keep == nil || !keep() {
			lost++
			continue
		}
		kept++
		if _, err := d.f.WriteAt(d.overlay[sec], sec*SectorSize); err != nil {
			return kept, lost, err
		}
	}
	d.stats.Kept += kept
	d.stats.Lost += lost
	d.pending, d.overlay = d.pending[:0], map[int64][]byte{}
	return kept, lost, nil
}

// KeepHalf keeps each unflushed sector with probability 1/2 (rng's).
func KeepHalf(rng *rand.Rand) func() bool { return func() bool { return rng.IntN(2) == 0 } }

// NBD protocol constants (the fixed newstyle handshake; simple replies).
const (
	nbdMagic        = 0x4e42444d41474943 // "NBDMAGIC"
	nbdOptMagic     = 0x49484156454f5054 // "IHAVEOPT"
	nbdRepMagic     = 0x3e889045565a9
	nbdReqMagic     = 0x25609513
	nbdReplyMagic   = 0x67446698
	nbdFlagFixed    = 1 << 0
	nbdFlagNoZeroes = 1 << 1
	nbdOptExport    = 1
	nbdOptAbort     = 2
	nbdOptInfo      = 6
	nbdOptGo        = 7
	nbdRepAck       = 1
	nbdRepInfo      = 3
	nbdRepErrUnsup  = 1<<31 + 1
	nbdInfoExport   = 0
	nbdHasFlags     = 1 << 0
	nbdSendFlush    = 1 << 2
	nbdSendFUA      = 1 << 3
	nbdCmdRead      = 0
	nbdCmdWrite     = 1
	nbdCmdDisc      = 2
	nbdCmdFlush     = 3
	nbdCmdFlagFUA   = 1 << 0
	nbdEIO          = 5
	nbdEINVAL       = 22
	nbdMaxRequest   = 32 << 20
)

// Serve speaks NBD (fixed newstyle handshake, any export name, simple
// replies, flush and FUA) on conn for d until the client disconnects or
// the connection breaks (qemu killed), or an armed cut tripped (ArmCut;
// the caller keeps conn open until it killed qemu). Requests are handled
// in order, so once Serve returned every write it acknowledged is in d.
func (d *Disk) Serve(conn io.ReadWriter) error {
	r := bufio.NewReader(conn)
	w := bufio.NewWriter(conn)
	be := binary.BigEndian
	put := func(vs ...any) error {
		for _, v := range vs {
			if err := binary.Write(w, be, v); err != nil {
				return err
			}
		}
		return nil
	}
	if err := put(uint64(nbdMagic), uint64(nbdOptMagic), uint16(nbdFlagFixed|nbdFlagNoZeroes)); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	var clientFlags uint32
	if err := binary.Read(r, be, &clientFlags); err != nil {
		return err
	}
	tflags := uint16(nbdHasFlags | nbdSendFlush | nbdSendFUA)
	// Options until the client starts the transmission phase.
	for started := false; !started; {
		var hdr struct {
			Magic  uint64
			Option uint32
			Len    uint32
		}
		if err := binary.Read(r, be, &hdr); err != nil {
			return err
		}
		if hdr.Magic != nbdOptMagic || hdr.Len > 1<<16 {
			return fmt.Errorf("nbd: bad option header %+v", hdr)
		}
		data := make([]byte, hdr.Len)
		if _, err := io.ReadFull(r, data); err != nil {
			return err
		}
		reply := func(typ uint32, payload []byte) error {
			return put(uint64(nbdRepMagic), hdr.Option, typ, uint32(len(payload)), payload)
		}
		var err error
		switch hdr.Option {
		case nbdOptExport:
			err = put(uint64(d.size), tflags)
			if err == nil && clientFlags&nbdFlagNoZeroes == 0 {
				err = put(make([]byte, 124))
			}
			started = true
		case nbdOptAbort:
			_ = reply(nbdRepAck, nil)
			_ = w.Flush()
			return nil
		case nbdOptInfo, nbdOptGo:
			info := make([]byte, 12)
			be.PutUint16(info[0:], nbdInfoExport)
			be.PutUint64(info[2:], uint64(d.size))
			be.PutUint16(info[10:], tflags)
			if err = reply(nbdRepInfo, info); err == nil {
				err = reply(nbdRepAck, nil)
			}
			started = hdr.Option == nbdOptGo
		default:
			err = reply(nbdRepErrUnsup, nil)
		}
		if err != nil {
			return err
		}
		if err := w.Flush(); err != nil {
			return err
		}
	}
	// Transmission.
	var buf []byte
	for {
		var req struct {
			Magic  uint32
			Flags  uint16
			Type   uint16
			Cookie uint64
			Offset uint64
			Len    uint32
		}
		if err := binary.Read(r, be, &req); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return nil // the client is gone (qemu killed)
			}
			return err
		}
		if req.Magic != nbdReqMagic || req.Len > nbdMaxRequest || req.Offset > uint64(d.size) {
			return fmt.Errorf("nbd: bad request %+v", req)
		}
		if cap(buf) < int(req.Len) {
			buf = make([]byte, req.Len)
		}
		p := buf[:req.Len]
		var errno uint32
		var data []byte
		switch req.Type {
		case nbdCmdRead:
			if err := d.ReadAt(p, int64(req.Offset)); err != nil {
				errno = nbdEIO
			} else {
				data = p
			}
		case nbdCmdWrite:
			if _, err := io.ReadFull(r, p); err != nil {
				return nil // cut mid-request: never acknowledged
			}
			if err := d.Write(p, int64(req.Offset), req.Flags&nbdCmdFlagFUA != 0); err != nil {
				errno = nbdEIO
			}
		case nbdCmdFlush:
			if err := d.Flush(); err != nil {
				errno = nbdEIO
			}
		case nbdCmdDisc:
			return nil
		default:
			errno = nbdEINVAL
		}
		if err := put(uint32(nbdReplyMagic), errno, req.Cookie); err != nil {
			return err
		}
		if data != nil {
			if _, err := w.Write(data); err != nil {
				return err
			}
		}
		if err := w.Flush(); err != nil {
			return nil // the client is gone
		}
		if req.Type == nbdCmdWrite && d.countdown() {
			close(d.tripped)
			return nil
		}
	}
}

// countdown counts an answered write against an armed cut and reports
// whether it was the last.
func (d *Disk) countdown() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.trip == 0 {
		return false
	}
	d.trip--
	return d.trip == 0
}
