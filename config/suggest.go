package config

import (
	"strconv"
	"strings"
)

// maxSuggestLen bounds the words suggest compares, so that a huge key in a
// broken file cannot make the edit distance quadratic in the file size.
const maxSuggestLen = 64

// suggest returns the word in known that s is most likely a typo of, or "".
// Case, '_' and '-' are ignored first (evidenceDir → evidence_dir), then the
// closest word by edit distance wins if it is within a third of its length.
func suggest(s string, known []string) string {
	if s == "" || len(s) > maxSuggestLen {
		return ""
	}
	ns := normalizeWord(s)
	best, bestDist := "", -1
	for _, k := range known {
		if k == s {
			continue
		}
		if normalizeWord(k) == ns {
			return k
		}
		// On a tie, the longer shared prefix wins: "stage" is more likely
		// "stages" than "state".
		d := editDistance(s, k)
		if bestDist < 0 || d < bestDist || (d == bestDist && commonPrefix(s, k) > commonPrefix(s, best)) {
			best, bestDist = k, d
		}
	}
	if bestDist < 0 {
		return ""
	}
	if bestDist <= max(1, min(len(s), len(best))/3) {
		return best
	}
	return ""
}

func commonPrefix(a, b string) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

func normalizeWord(s string) string {
	s = strings.ToLower(s)
	return strings.NewReplacer("_", "", "-", "", " ", "").Replace(s)
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// didYouMean renders a suggestion as the tail of an error message.
func didYouMean(s string, known []string) string {
	if k := suggest(s, known); k != "" {
		return "; did you mean " + strconv.Quote(k) + "?"
	}
	return ""
}
