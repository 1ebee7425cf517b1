package registrar

import (
	"strings"
	"sync"
	"time"
)

// fallbacks remembers clients that cannot cope with several challenges.
//
// RFC 8760 lets a server offer one challenge per algorithm, and a client
// should answer the first it supports. Some clients still give up on the
// whole response when any challenge names an algorithm they do not know:
// baresip 1.0 with libre 1.1 (Debian 12's) fails with ENOSYS and retries
// without credentials. When a source comes back without credentials on the
// same Call-ID right after a multi-algorithm challenge, it is remembered
// and from then on challenged with MD5 alone. A source that answers a
// challenge is forgotten, so a client that merely sends its refreshes
// without credentials is never switched.
//
// Agents known to fail this way are switched from their first request, so
// they register at once instead of after their retry timer (baresip waits
// 30-90 s).
type fallbacks struct {
	mu      sync.Mutex
	entries map[string]fallbackEntry
}

type fallbackEntry struct {
	callID string    // Call-ID of the last multi-algorithm challenge
	at     time.Time // when it was sent
	single time.Time // MD5-only challenges until then (zero: not yet)
}

const (
	// fallbackWindow is how soon a credential-less retry must follow an
	// unanswered challenge to count as a client that could not answer it.
	fallbackWindow = 10 * time.Minute
	// fallbackTTL is how long a source stays on MD5-only challenges.
	fallbackTTL = 24 * time.Hour
	// fallbackMax bounds the memory used; on overflow stale entries go,
	// and if that is not enough the table starts afresh.
	fallbackMax = 1 << 16
)

// single reports whether source gets MD5-only challenges.
func (f *fallbacks) single(source string, now time.Time) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	e, ok := f.entries[source]
	return ok && now.Before(e.single)
}

// challenged records a multi-algorithm challenge sent to source.
func (f *fallbacks) challenged(source, callID string, now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.entries == nil {
		f.entries = map[string]fallbackEntry{}
	}
	if len(f.entries) >= fallbackMax {
		for k, e := range f.entries {
			if now.Sub(e.at) > fallbackWindow && !now.Before(e.single) {
				delete(f.entries, k)
			}
		}
		if len(f.entries) >= fallbackMax {
			f.entries = map[string]fallbackEntry{}
		}
	}
	e := f.entries[source]
	e.callID, e.at = callID, now
	f.entries[source] = e
}

// answered forgets the pending challenge of a source that sent credentials.
func (f *fallbacks) answered(source string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if e, ok := f.entries[source]; ok && e.callID != "" {
		e.callID = ""
		f.entries[source] = e
	}
}

// md5OnlyAgents are User-Agent prefixes of clients that abort on a
// challenge for an algorithm they lack instead of skipping it.
var md5OnlyAgents = []string{
	"baresip v0.", "baresip v1.", // libre before 2.x: sip_auth returns ENOSYS
}

func md5OnlyAgent(ua string) bool {
	for _, p := range md5OnlyAgents {
		if strings.HasPrefix(ua, p) {
			return true
		}
	}
	return false
}

// unanswered is called for a request without credentials; it reports
// whether source has just failed to answer a multi-algorithm challenge, and
// if so switches it to MD5-only challenges.
func (f *fallbacks) unanswered(source, callID string, now time.Time) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	e, ok := f.entries[source]
	if !ok || e.callID == "" || e.callID != callID || now.Sub(e.at) > fallbackWindow || now.Before(e.single) {
		return false
	}
	e.single = now.Add(fallbackTTL)
	f.entries[source] = e
	return true
}

// sha256FirstAgents are User-Agent prefixes of clients known to answer a
// SHA-256 challenge: they are offered SHA-256 first (RFC 8760 §2.4 asks a
// client to take the first algorithm it supports). Everyone else keeps
// the configured order, MD5 first by default, because SIPp 3.6 and many
// desk phones read only the first challenge and know MD5 alone.
var sha256FirstAgents = []string{
	"Linphone", // liblinphone / belle-sip 4.3 and later (Debian 12 has 5.1)
}

func sha256FirstAgent(ua string) bool {
	for _, p := range sha256FirstAgents {
		if strings.HasPrefix(ua, p) {
			return true
		}
	}
	return false
}
