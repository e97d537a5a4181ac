package devidp

// SetDPoPReplayLimit gives s fresh DPoP replay sets of limit entries, so
// that tests can fill them with a handful of requests.
func SetDPoPReplayLimit(s *Server, limit int) {
	s.dpop.tokenReplay, s.dpop.userinfoReplay = newJTISet(limit), newJTISet(limit)
}
