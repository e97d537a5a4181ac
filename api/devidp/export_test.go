package devidp

// SetDPoPReplayLimit gives s a fresh DPoP replay set of limit entries, so
// that tests can fill it with a handful of requests.
func SetDPoPReplayLimit(s *Server, limit int) { s.dpop.replay = newJTISet(limit) }
