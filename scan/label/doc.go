// Package label reads the machine-readable code on a slide's label (Code
// 128, Data Matrix or QR) from an overview image, with the pure-Go ZXing
// port github.com/makiuchi-d/gozxing. It reads or it fails: a label that no
// reader decodes with its checksum is reported unreadable, never guessed
// from partial reads or from the printed text.
package label
