package simnet

import "time"

// Time is a point in virtual time, in nanoseconds since the start of the
// run. It has the same unit as time.Duration so conversions are exact; it is
// a distinct type so that virtual instants cannot be confused with wall-clock
// times or with durations.
type Time int64

// FromDuration returns the virtual instant d after the start of the run.
func FromDuration(d time.Duration) Time { return Time(d) }

// Duration returns t as the elapsed time since the start of the run.
func (t Time) Duration() time.Duration { return time.Duration(t) }

// Seconds returns t in seconds since the start of the run.
func (t Time) Seconds() float64 { return time.Duration(t).Seconds() }

// Add returns the instant d after t.
func (t Time) Add(d time.Duration) Time { return t + Time(d) }

// Sub returns the duration t-u.
func (t Time) Sub(u Time) time.Duration { return time.Duration(t - u) }

// String formats t like a time.Duration since the start of the run, e.g.
// "1.5s".
func (t Time) String() string { return time.Duration(t).String() }
