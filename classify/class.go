package classify

import (
	"fmt"
	"strings"
)

// Class is a Bethesda category for a single squamous cell.
type Class int

// Bethesda classes, in increasing order of severity.
const (
	NILM  Class = iota // negative for intraepithelial lesion or malignancy
	ASCUS              // atypical squamous cells of undetermined significance (low grade)
	LSIL               // low-grade squamous intraepithelial lesion (low grade)
	ASCH               // atypical squamous cells, cannot exclude HSIL (high grade)
	HSIL               // high-grade squamous intraepithelial lesion (high grade)
	SCC                // squamous cell carcinoma (high grade)
)

// NumClasses is the number of Bethesda classes.
const NumClasses = 6

var classNames = [NumClasses]string{"NILM", "ASC-US", "LSIL", "ASC-H", "HSIL", "SCC"}

// String returns the Bethesda name: "NILM", "ASC-US", "LSIL", "ASC-H", "HSIL" or "SCC".
func (c Class) String() string {
	if c < 0 || int(c) >= NumClasses {
		return fmt.Sprintf("Class(%d)", int(c))
	}
	return classNames[c]
}

// HighGrade reports whether c is ASC-H, HSIL or SCC.
func (c Class) HighGrade() bool { return c == ASCH || c == HSIL || c == SCC }

// LowGrade reports whether c is ASC-US or LSIL.
func (c Class) LowGrade() bool { return c == ASCUS || c == LSIL }

// MarshalText encodes the class by name.
func (c Class) MarshalText() ([]byte, error) {
	if c < 0 || int(c) >= NumClasses {
		return nil, fmt.Errorf("classify: invalid class %d", int(c))
	}
	return []byte(c.String()), nil
}

// UnmarshalText decodes a class name (see ParseClass).
func (c *Class) UnmarshalText(b []byte) error {
	v, err := ParseClass(string(b))
	if err != nil {
		return err
	}
	*c = v
	return nil
}

// ParseClass parses a Bethesda class name. It accepts the names produced by
// String, case-insensitively and with or without the hyphen ("ASCUS", "ASC-US"),
// and CRIC's "Negative for intraepithelial lesion" for NILM.
func ParseClass(s string) (Class, error) {
	k := strings.ToUpper(strings.TrimSpace(s))
	k = strings.NewReplacer("-", "", "_", "", " ", "").Replace(k)
	switch k {
	case "NILM", "NEGATIVEFORINTRAEPITHELIALLESION", "NEGATIVEFORINTRAEPITHELIALLESIONORMALIGNANCY", "NEGATIVE", "NORMAL":
		return NILM, nil
	case "ASCUS":
		return ASCUS, nil
	case "LSIL":
		return LSIL, nil
	case "ASCH":
		return ASCH, nil
	case "HSIL":
		return HSIL, nil
	case "SCC":
		return SCC, nil
	}
	return 0, fmt.Errorf("classify: unknown class %q", s)
}
