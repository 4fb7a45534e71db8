package ingest

import "time"

// validTime reports whether s is an RFC 3339 timestamp as time.Parse with
// time.RFC3339 accepts it. The common forms are checked by hand, which is
// several times cheaper than time.Parse and allocates nothing even with a
// numeric offset; anything else is left to time.Parse, so the answer is
// always time.Parse's (FuzzValidTime checks that the two agree).
func validTime(s string) bool {
	return plainRFC3339(s) || parseRFC3339(s)
}

func parseRFC3339(s string) bool {
	_, err := time.Parse(time.RFC3339, s)
	return err == nil
}

// plainRFC3339 accepts YYYY-MM-DDTHH:MM:SS[.F{1,9}](Z|±HH:MM) with every
// field in range. It may refuse a timestamp time.Parse accepts, never the
// other way round.
func plainRFC3339(s string) bool {
	if len(s) < len("2006-01-02T15:04:05Z") ||
		s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' {
		return false
	}
	year, ok1 := digits(s[0:4])
	month, ok2 := digits(s[5:7])
	day, ok3 := digits(s[8:10])
	hour, ok4 := digits(s[11:13])
	minute, ok5 := digits(s[14:16])
	sec, ok6 := digits(s[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) ||
		month < 1 || month > 12 || day < 1 || day > daysIn(month, year) ||
		hour > 23 || minute > 59 || sec > 59 {
		return false
	}
	rest := s[19:]
	if len(rest) > 0 && rest[0] == '.' {
		n := 1
		for n < len(rest) && '0' <= rest[n] && rest[n] <= '9' {
			n++
		}
		if n == 1 || n > 10 {
			return false // no digits, or more than nanoseconds
		}
		rest = rest[n:]
	}
	if rest == "Z" {
		return true
	}
	if len(rest) != len("+07:00") || (rest[0] != '+' && rest[0] != '-') || rest[3] != ':' {
		return false
	}
	oh, ok1 := digits(rest[1:3])
	om, ok2 := digits(rest[4:6])
	return ok1 && ok2 && oh <= 23 && om <= 59
}

// digits parses a short run of ASCII digits.
func digits(s string) (int, bool) {
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}
