package settings

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// value is how a setting reads its variable into its Config field and
// spells it back: one kind per Go type (ints, durations, text, flag, rate).
type value interface {
	// parse reads v, a variable that is set, into c; a Problem without
	// Var says why it cannot.
	parse(v string, c *Config) *Problem
	// render spells c's value so that parse reads it back.
	render(c *Config) string
	// reset sets c's field to the default.
	reset(c *Config)
	// field points at c's field (for the table's tests).
	field(c *Config) any
}

// slot is what every kind has: where its value lives, and its default.
type slot[T any] struct {
	at  func(*Config) *T
	def T
}

func (f slot[T]) reset(c *Config)     { *f.at(c) = f.def }
func (f slot[T]) field(c *Config) any { return f.at(c) }
func (f slot[T]) set(c *Config, v T)  { *f.at(c) = v }
func (f slot[T]) get(c *Config) T     { return *f.at(c) }

// intKind is a whole number from lo to hi.
type intKind struct {
	slot[int]
	lo, hi int
}

func ints(at func(*Config) *int, def, lo, hi int) value {
	return intKind{slot[int]{at, def}, lo, hi}
}

func (k intKind) parse(v string, c *Config) *Problem {
	n, err := strconv.Atoi(v)
	if err != nil {
		return quoted(v, "not an integer")
	}
	if n < k.lo || n > k.hi {
		return plain(strconv.Itoa(n), fmt.Sprintf("must be between %d and %d", k.lo, k.hi))
	}
	k.set(c, n)
	return nil
}

func (k intKind) render(c *Config) string { return strconv.Itoa(k.get(c)) }

// durationKind is a Go duration from lo to hi.
type durationKind struct {
	slot[time.Duration]
	lo, hi time.Duration
}

func durations(at func(*Config) *time.Duration, def, lo, hi time.Duration) value {
	return durationKind{slot[time.Duration]{at, def}, lo, hi}
}

func (k durationKind) parse(v string, c *Config) *Problem {
	d, err := time.ParseDuration(v)
	if err != nil {
		return quoted(v, "not a Go duration (e.g. 90s, 10m, 1h)")
	}
	if d < k.lo || d > k.hi {
		return plain(v, fmt.Sprintf("must be between %s and %s", k.lo, k.hi))
	}
	k.set(c, d)
	return nil
}

func (k durationKind) render(c *Config) string { return k.get(c).String() }

// textKind is a string of at most maxLen bytes without surrounding white
// space; what characters it may hold, LoadConfig checks after the rows.
type textKind struct {
	slot[string]
	maxLen int
}

func text(at func(*Config) *string, def string, maxLen int) value {
	return textKind{slot[string]{at, def}, maxLen}
}

func (k textKind) parse(v string, c *Config) *Problem {
	if len(v) > k.maxLen {
		return &Problem{Value: v, Msg: fmt.Sprintf("%d characters, at most %d allowed", len(v), k.maxLen)}
	}
	if strings.TrimSpace(v) != v {
		return quoted(v, "leading or trailing white space")
	}
	k.set(c, v)
	return nil
}

func (k textKind) render(c *Config) string { return k.get(c) }

// flagKind is a boolean as strconv.ParseBool reads it.
type flagKind struct{ slot[bool] }

func flag(at func(*Config) *bool, def bool) value { return flagKind{slot[bool]{at, def}} }

func (k flagKind) parse(v string, c *Config) *Problem {
	b, err := strconv.ParseBool(v)
	if err != nil {
		return quoted(v, "not a boolean (true or false)")
	}
	k.set(c, b)
	return nil
}

func (k flagKind) render(c *Config) string { return strconv.FormatBool(k.get(c)) }

// rateKind is a number greater than 0 and at most hi.
type rateKind struct {
	slot[float64]
	hi float64
}

func rate(at func(*Config) *float64, def, hi float64) value {
	return rateKind{slot[float64]{at, def}, hi}
}

func (k rateKind) parse(v string, c *Config) *Problem {
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return quoted(v, "not a number")
	}
	if !(f > 0 && f <= k.hi) { // also rejects NaN
		return plain(v, "must be greater than 0 and at most "+formatFloat(k.hi))
	}
	k.set(c, f)
	return nil
}

func (k rateKind) render(c *Config) string { return formatFloat(k.get(c)) }

func formatFloat(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

// A Problem is one variable LoadConfig refuses, and why.
type Problem struct {
	// Var is the variable, e.g. ROTATOR_INTERVAL_DAYS.
	Var string
	// Value is the variable's value as LoadConfig read it ("" when the
	// problem is that it is missing).
	Value string
	// Msg says why the value is refused.
	Msg string
	// shown is Value as Error shows it: quoted when it is text the
	// variable's kind cannot read, "" when the message leaves it out.
	shown string
}

// quoted is a Problem whose message shows the value quoted (%q).
func quoted(v, msg string) *Problem { return &Problem{Value: v, Msg: msg, shown: strconv.Quote(v)} }

// plain is a Problem whose message shows the value as it is.
func plain(v, msg string) *Problem { return &Problem{Value: v, Msg: msg, shown: v} }

// Error names the variable and, where it helps, its value:
// ROTATOR_INTERVAL_DAYS="ninety": not an integer.
func (p Problem) Error() string {
	if p.shown == "" {
		return p.Var + ": " + p.Msg
	}
	return p.Var + "=" + p.shown + ": " + p.Msg
}

// ConfigError is LoadConfig's error: every variable it refuses, in the
// table's order, then the problems of the checks that read two settings.
type ConfigError struct {
	Problems []Problem
}

// Error is the one problem's message, or every problem's joined by "; "
// (one line: a cold start logs it as one event).
func (e *ConfigError) Error() string {
	msgs := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		msgs[i] = p.Error()
	}
	return strings.Join(msgs, "; ")
}

// Unwrap gives each Problem to errors.As and errors.Is.
func (e *ConfigError) Unwrap() []error {
	errs := make([]error, len(e.Problems))
	for i, p := range e.Problems {
		errs[i] = p
	}
	return errs
}
