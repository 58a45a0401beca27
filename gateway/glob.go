package gateway

// Glob patterns of SCAN's MATCH option: * any run of bytes, ? one byte,
// [abc] [a-z] [^a] one byte of (not of) a set, \x the byte x. Every token
// but * matches exactly one byte, so the classic greedy match with
// backtracking to the last * is exact and takes O(len(pattern)·len(s)),
// whatever the pattern: a hostile one cannot make a scan exponential.

// globMatch reports whether s matches pattern.
func globMatch(pattern, s []byte) bool {
	p, i := 0, 0
	star, starI := -1, 0 // pattern index after the last *, and where in s it took over
	for i < len(s) {
		if p < len(pattern) && pattern[p] == '*' {
			for p < len(pattern) && pattern[p] == '*' {
				p++
			}
			star, starI = p, i
			continue
		}
		if p < len(pattern) {
			if ok, next := matchToken(pattern, p, s[i]); ok {
				p, i = next, i+1
				continue
			}
		}
		if star < 0 {
			return false
		}
		// Let the last * take one more byte and retry from there.
		starI++
		p, i = star, starI
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// matchToken matches the one-byte token at pattern[p] against c and
// returns where the next token starts.
func matchToken(pattern []byte, p int, c byte) (bool, int) {
	switch pattern[p] {
	case '?':
		return true, p + 1
	case '\\':
		if p+1 < len(pattern) {
			return pattern[p+1] == c, p + 2
		}
		return c == '\\', p + 1 // a trailing backslash is itself
	case '[':
		return matchClass(pattern, p+1, c)
	}
	return pattern[p] == c, p + 1
}

// matchClass matches c against the set starting at pattern[p] (after the
// '['), up to its ']' or, unclosed, the end of the pattern.
func matchClass(pattern []byte, p int, c byte) (bool, int) {
	negate := p < len(pattern) && pattern[p] == '^'
	if negate {
		p++
	}
	in := false
	for p < len(pattern) && pattern[p] != ']' {
		lo := pattern[p]
		if lo == '\\' && p+1 < len(pattern) {
			p++
			lo = pattern[p]
		}
		p++
		if p+1 < len(pattern) && pattern[p] == '-' && pattern[p+1] != ']' {
			hi := pattern[p+1]
			p += 2
			if hi == '\\' && p < len(pattern) {
				hi = pattern[p]
				p++
			}
			if lo > hi {
				lo, hi = hi, lo
			}
			in = in || (lo <= c && c <= hi)
			continue
		}
		in = in || lo == c
	}
	if p < len(pattern) {
		p++ // the ']'
	}
	return in != negate, p
}

// literalPrefix is the bytes every match of pattern starts with: its
// tokens up to the first wildcard. A scan with MATCH reads only the keys
// with this prefix.
func literalPrefix(pattern []byte) []byte {
	var out []byte
	for p := 0; p < len(pattern); p++ {
		switch c := pattern[p]; c {
		case '*', '?', '[':
			return out
		case '\\':
			if p+1 == len(pattern) {
				return append(out, c)
			}
			p++
			out = append(out, pattern[p])
		default:
			out = append(out, c)
		}
	}
	return out
}
