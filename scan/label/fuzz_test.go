package label

import (
	"errors"
	"image"
	"testing"
)

// FuzzRead feeds arbitrary grey images to the readers: any outcome but a
// panic or a non-ErrUnreadable failure is fine. The first two bytes give
// the width and height.
func FuzzRead(f *testing.F) {
	f.Add([]byte{8, 4, 0, 255, 0, 255, 0, 255, 0, 255, 255, 0, 255, 0, 255, 0, 255, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) < 2 {
			return
		}
		w, h := int(b[0])%200+1, int(b[1])%200+1
		img := image.NewGray(image.Rect(0, 0, w, h))
		for i := range img.Pix {
			if len(b) > 2 {
				img.Pix[i] = b[2+i%(len(b)-2)]
			}
		}
		if _, err := Read(img); err != nil && !errors.Is(err, ErrUnreadable) {
			t.Fatalf("error not ErrUnreadable: %v", err)
		}
	})
}
