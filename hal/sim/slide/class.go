package slide

import (
	"fmt"

	"papscan/virtualslide"
)

// Class is a cell's Bethesda class.
type Class uint8

// Bethesda classes, from negative to most severe.
const (
	NILM  Class = iota // negative for intraepithelial lesion or malignancy
	ASCUS              // atypical squamous cells of undetermined significance
	LSIL               // low-grade squamous intraepithelial lesion
	ASCH               // atypical squamous cells, cannot exclude HSIL
	HSIL               // high-grade squamous intraepithelial lesion
	SCC                // squamous cell carcinoma
	numClasses
)

// Classes lists every class in order of severity.
func Classes() []Class { return []Class{NILM, ASCUS, LSIL, ASCH, HSIL, SCC} }

// String returns the Bethesda abbreviation: "NILM", "ASC-US", "LSIL",
// "ASC-H", "HSIL" or "SCC".
func (c Class) String() string {
	switch c {
	case NILM:
		return "NILM"
	case ASCUS:
		return "ASC-US"
	case LSIL:
		return "LSIL"
	case ASCH:
		return "ASC-H"
	case HSIL:
		return "HSIL"
	case SCC:
		return "SCC"
	}
	return fmt.Sprintf("Class(%d)", uint8(c))
}

// Grade is the triage grade of the class: Negative for NILM, LowGrade for
// ASC-US and LSIL, HighGrade for ASC-H, HSIL and SCC.
func (c Class) Grade() Diagnosis {
	switch c {
	case NILM:
		return Negative
	case ASCUS, LSIL:
		return LowGrade
	}
	return HighGrade
}

// ParseClass parses a Bethesda class name as String prints it, or as the
// CRIC collection spells it ("Negative for intraepithelial lesion"). The
// classes are virtualslide's, in the same order.
func ParseClass(s string) (Class, error) {
	c, err := virtualslide.ParseClass(s)
	if err != nil {
		return NILM, fmt.Errorf("slide: %w", err)
	}
	return Class(c), nil
}

// Diagnosis is a slide-level truth: a grade (Negative, LowGrade, HighGrade,
// each a mix of the classes of that grade) or one specific abnormal class.
type Diagnosis uint8

// Slide diagnoses.
const (
	Negative  Diagnosis = iota // NILM: no abnormal cells
	LowGrade                   // ASC-US and LSIL cells
	HighGrade                  // ASC-H, HSIL and SCC cells, with some LSIL
	OnlyASCUS                  // abnormal cells are all ASC-US
	OnlyLSIL                   // abnormal cells are all LSIL
	OnlyASCH                   // abnormal cells are all ASC-H
	OnlyHSIL                   // abnormal cells are all HSIL
	OnlySCC                    // abnormal cells are all SCC
)

// ClassDiagnosis is the diagnosis of a slide whose abnormal cells are all of
// class c (Negative for NILM).
func ClassDiagnosis(c Class) Diagnosis {
	switch c {
	case ASCUS:
		return OnlyASCUS
	case LSIL:
		return OnlyLSIL
	case ASCH:
		return OnlyASCH
	case HSIL:
		return OnlyHSIL
	case SCC:
		return OnlySCC
	}
	return Negative
}

// String implements fmt.Stringer.
func (d Diagnosis) String() string {
	switch d {
	case Negative:
		return "NILM"
	case LowGrade:
		return "low-grade"
	case HighGrade:
		return "high-grade"
	}
	if cs := d.classes(); len(cs) == 1 {
		return cs[0].String()
	}
	return fmt.Sprintf("Diagnosis(%d)", uint8(d))
}

// Grade is Negative, LowGrade or HighGrade.
func (d Diagnosis) Grade() Diagnosis {
	switch d {
	case Negative, LowGrade, HighGrade:
		return d
	}
	if cs := d.classes(); len(cs) > 0 {
		return cs[0].Grade()
	}
	return Negative
}

// classes are the abnormal classes a slide of this diagnosis carries, with
// their relative weights implied by repetition.
func (d Diagnosis) classes() []Class {
	switch d {
	case LowGrade:
		return []Class{ASCUS, LSIL, LSIL}
	case HighGrade:
		return []Class{ASCH, HSIL, HSIL, HSIL, SCC, LSIL}
	case OnlyASCUS:
		return []Class{ASCUS}
	case OnlyLSIL:
		return []Class{LSIL}
	case OnlyASCH:
		return []Class{ASCH}
	case OnlyHSIL:
		return []Class{HSIL}
	case OnlySCC:
		return []Class{SCC}
	}
	return nil
}
