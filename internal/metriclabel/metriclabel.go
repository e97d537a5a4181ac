// Package metriclabel keeps Prometheus label values drawn from requests
// bounded: a label whose values an outsider chooses grows /metrics, and the
// server's memory, without limit.
package metriclabel

// Method is the request method as a label: the standard methods as they
// are, anything else "other" (any token is a valid HTTP method).
func Method(m string) string {
	switch m {
	case "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS":
		return m
	}
	return "other"
}
