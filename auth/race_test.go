//go:build race

package auth

// raceEnabled lets slow crypto-heavy tests do fewer rounds under -race,
// which makes verification about ten times slower.
const raceEnabled = true
