package dialog

// srtpMedia is a MediaSession that speaks SDES-SRTP per leg: package
// media's relay. The relay decides and does SRTP itself (rtp.srtp); the
// dialog only tells it each local user's users[].srtp.
type srtpMedia interface {
	// SetSRTP sets the SRTP policy (off, optional, mandatory) of the
	// caller's (toCaller) or the callee's phone before the first offer;
	// "" keeps rtp.srtp's.
	SetSRTP(toCaller bool, policy string)
}

// srtpPolicies tells ms the users[].srtp of the caller's account and of
// the callee; phones that are not local users keep rtp.srtp's.
func (s *Server) srtpPolicies(ms MediaSession, caller, callee string) {
	sm, ok := ms.(srtpMedia)
	if !ok {
		return
	}
	sm.SetSRTP(true, s.srtpPolicy(caller))
	sm.SetSRTP(false, s.srtpPolicy(callee))
}

// srtpPolicy is user's users[].srtp, "" for anyone else or when unset.
func (s *Server) srtpPolicy(user string) string {
	if user == "" {
		return ""
	}
	for i := range s.cfg.Users {
		if u := &s.cfg.Users[i]; u.Username == user {
			return u.SRTP
		}
	}
	return ""
}
