package exchange

import "strings"

// maxReturnToLen bounds returnTo; a longer one becomes "/".
const maxReturnToLen = 1024

// sanitizeReturnTo returns p when it is a local path that is safe to put in
// a Location header, else "/". Safe means: it starts with exactly one "/",
// contains no "//" anywhere (a browser reads "//evil.example" as another
// host), no backslash (browsers treat "\" as "/"), and only printable ASCII
// without spaces (no control characters, which browsers strip, turning
// "/\t/evil.example" into "//evil.example"). Query and fragment are kept.
func sanitizeReturnTo(p string) string {
	if len(p) == 0 || len(p) > maxReturnToLen || p[0] != '/' {
		return "/"
	}
	if strings.Contains(p, "//") || strings.Contains(p, `\`) {
		return "/"
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c <= ' ' || c >= 0x7f {
			return "/"
		}
	}
	return p
}
